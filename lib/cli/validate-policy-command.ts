/**
 * `validate-policy`: the policy checks start-up makes, for the policy repository's CI; with
 * `--online`, also that every target the policy names can be read in SWR with the service's own
 * credentials — a typo'd repository passes every offline rule, and then dead-letters every join
 * to its team.
 */
import { allPolicyTargets, loadPolicyFile } from '../core/policy.ts';
import { type Policy, targetKey } from '../domain.ts';
import { ConfigError } from '../errors.ts';
import { readTargets } from '../read-targets.ts';
import { flag, parseCommandArgs } from './args.ts';
import { type CliIo, type ExitCode, ExitCodes, line, table, UsageError, writeJson } from './io.ts';
import { openSwr, readCliConfig } from './services.ts';

const validatePolicyUsage = `usage: swr-access validate-policy FILE [--online] [--json]

Checks an access policy with the same rules as start-up: every problem is listed with its file,
line, column and YAML path.

  --online   also read every target of the policy in SWR (GET, nothing written), with the
             configuration of the functions (SWR_ENDPOINT, IAM_ENDPOINT, credentials): a target
             that cannot be read (no such repository or namespace, access refused) is listed
             with the reason
  --json     the result as JSON on stdout

Exit: 0 valid (and, online, every target readable); 1 online: some target cannot be read;
2 invalid (every problem listed), unreadable, or a configuration error.`;

/** The most a whole online check may take: one GET per target, retried within the client. */
const onlineDeadlineMs = 5 * 60_000;

interface TargetCheck {
  target: string;
  kind: 'repo' | 'namespace';
  ok: boolean;
  /** Users holding a permission there (the caller not counted), when it could be read. */
  users?: number;
  code?: string;
  reason?: string;
}

const summaryOf = (path: string, policy: Policy) => ({
  ok: true,
  file: path,
  teams: Object.keys(policy.teams).length,
  targets: allPolicyTargets(policy).length,
  protectedUsers: policy.protectedUsers.length,
  managedNamespaces: policy.managedNamespaces.length,
});

/** Reads every target of the policy; one entry per target, in the policy's target order. */
const checkTargetsOnline = async (path: string, io: CliIo): Promise<TargetCheck[]> => {
  const config = readCliConfig(io.env, { policyFile: path });
  const swr = await openSwr(config, io);
  try {
    const targets = allPolicyTargets(swr.policy);
    const now = (io.now ?? (() => new Date()))().getTime();
    const { actual, readErrors } = await readTargets(
      targets,
      swr.swr,
      config.swrConcurrency,
      now + onlineDeadlineMs,
    );
    return targets.map((target): TargetCheck => {
      const key = targetKey(target);
      const access = actual.get(key);
      if (access !== undefined)
        return {
          target: key,
          kind: target.kind,
          ok: true,
          users: access.users.filter((user) => user.user_id !== access.selfUserId).length,
        };
      const error = readErrors.get(key);
      return {
        target: key,
        kind: target.kind,
        ok: false,
        code: error?.code ?? 'UNKNOWN',
        reason: error?.message ?? 'not read',
      };
    });
  } finally {
    await swr.close();
  }
};

/** @example await validatePolicyCommand(['config/policy.yaml', '--online'], io) // 0 */
const validatePolicyCommand = async (argv: string[], io: CliIo): Promise<ExitCode> => {
  const parsed = parseCommandArgs(
    argv,
    { json: { type: 'boolean' }, online: { type: 'boolean' } },
    validatePolicyUsage,
    1,
  );
  if (parsed.help) {
    line(io.stdout, validatePolicyUsage);
    return ExitCodes.ok;
  }
  const path = parsed.positionals[0];
  if (path === undefined) throw new UsageError('the policy FILE is required', validatePolicyUsage);
  const json = flag(parsed, 'json');
  let policy: Policy;
  try {
    policy = await loadPolicyFile(path);
  } catch (error) {
    if (!(error instanceof ConfigError) || !json) throw error;
    writeJson(io.stdout, {
      ok: false,
      file: path,
      message: error.message.split('\n')[0],
      problems: error.problems,
    });
    return ExitCodes.usage;
  }
  const summary = summaryOf(path, policy);
  const text = `${path}: valid: ${summary.teams} teams, ${summary.targets} targets, ${summary.protectedUsers} protected users, ${summary.managedNamespaces} managed namespaces`;
  if (!flag(parsed, 'online')) {
    if (json) writeJson(io.stdout, summary);
    else line(io.stdout, text);
    return ExitCodes.ok;
  }
  line(io.stderr, `validate-policy: reading ${summary.targets} targets in SWR…`);
  const checks = await checkTargetsOnline(path, io);
  const unreadable = checks.filter((check) => !check.ok);
  if (json) writeJson(io.stdout, { ...summary, ok: unreadable.length === 0, online: checks });
  else {
    line(io.stdout, text);
    for (const row of table([
      ['TARGET', 'KIND', 'IN SWR'],
      ...checks.map((check) => [
        check.target,
        check.kind,
        check.ok
          ? `ok (${check.users} users hold a permission)`
          : `CANNOT BE READ: ${check.code} ${check.reason}`,
      ]),
    ]))
      line(io.stdout, `  ${row}`);
    line(
      io.stdout,
      unreadable.length === 0
        ? `online: all ${checks.length} targets exist in SWR`
        : `online: ${unreadable.length} of ${checks.length} targets cannot be read: fix the policy (or SWR) before deploying it`,
    );
  }
  return unreadable.length === 0 ? ExitCodes.ok : ExitCodes.failed;
};

export type { TargetCheck };
export { validatePolicyCommand, validatePolicyUsage };
