/**
 * `swr-access show`: who has access, as SWR reports it now. `--target` lists every permission on a
 * repository or namespace; `--user` lists a user's permissions on every target the policy names
 * and on every repository of the managed namespaces. A target that cannot be read is an error
 * (exit 1), never shown as "nobody".
 */
import { allPolicyTargets } from '../core/policy.ts';
import {
  type IamUser,
  permissionOfLevel,
  type Target,
  targetKey,
  type UserDirectoryPort,
} from '../domain.ts';
import { asSyncError, readTargets } from '../read-targets.ts';
import { namespaceRule, repositoryRule, userIdRule } from '../swr/names.ts';
import { flag, parseCommandArgs, stringValue } from './args.ts';
import { type CliIo, type ExitCode, ExitCodes, line, table, UsageError, writeJson } from './io.ts';
import { openSwr, readCliConfig } from './services.ts';

const showUsage = `usage: swr-access show (--target NAMESPACE[/REPOSITORY] | --user ID|NAME) [--policy FILE] [--json]

The permissions SWR reports now ("who has access to this repository?").

  --target T      every user's permission on a repository (core/api/server) or a namespace (core)
  --user U        a user's permissions (IAM id, or exact IAM name) on every target of the policy and
                  on every repository of its managed namespaces
  --policy FILE   the access policy (default: POLICY_FILE, else config/policy.yaml)
  --json          the result as JSON on stdout

Exit: 0 shown; 1 a target, the user or a listing could not be read (never shown as "no access");
2 usage or configuration.`;

/** `core/api/server` → repository target; `core` → namespace target; names checked as SWR does. */
const targetOf = (text: string): Target => {
  const slash = text.indexOf('/');
  const namespace = slash === -1 ? text : text.slice(0, slash);
  const broken = namespaceRule(namespace);
  if (broken !== undefined)
    throw new UsageError(`--target: namespace ${JSON.stringify(namespace)} ${broken}`, showUsage);
  if (slash === -1) return { kind: 'namespace', namespace };
  const repository = text.slice(slash + 1);
  const repositoryBroken = repositoryRule(repository);
  if (repositoryBroken !== undefined)
    throw new UsageError(`--target: repository ${JSON.stringify(repository)} ${repositoryBroken}`, showUsage);
  return { kind: 'repo', namespace, repository };
};

const kindLabel = (target: Target): string => (target.kind === 'namespace' ? 'namespace' : 'repository');

const findUser = async (directory: UserDirectoryPort, who: string): Promise<IamUser | undefined> =>
  userIdRule(who) === undefined ? directory.findById(who) : directory.findByName(who);

/** @example await showCommand(['--target', 'core/api/server', '--json'], io) */
const showCommand = async (argv: string[], io: CliIo): Promise<ExitCode> => {
  const parsed = parseCommandArgs(
    argv,
    {
      target: { type: 'string' },
      user: { type: 'string' },
      policy: { type: 'string' },
      json: { type: 'boolean' },
    },
    showUsage,
    0,
  );
  if (parsed.help) {
    line(io.stdout, showUsage);
    return ExitCodes.ok;
  }
  const targetText = stringValue(parsed, 'target');
  const who = stringValue(parsed, 'user');
  if ((targetText === undefined) === (who === undefined))
    throw new UsageError('give exactly one of --target and --user', showUsage);
  const target = targetText === undefined ? undefined : targetOf(targetText);
  const json = flag(parsed, 'json');
  const config = readCliConfig(
    io.env.POLICY_FILE === undefined && stringValue(parsed, 'policy') === undefined
      ? { ...io.env, POLICY_FILE: 'config/policy.yaml' }
      : io.env,
    { policyFile: stringValue(parsed, 'policy') },
  );
  const swr = await openSwr(config);
  try {
    if (target !== undefined) {
      let access: Awaited<ReturnType<typeof swr.swr.getAccess>>;
      try {
        access = await swr.swr.getAccess(target);
      } catch (error) {
        const failure = asSyncError(error);
        line(
          io.stderr,
          `swr-access show: cannot read ${kindLabel(target)} ${targetKey(target)} (${failure.code}): ${failure.message}`,
        );
        return ExitCodes.failed;
      }
      const users = [...access.users].sort((a, b) => a.user_name.localeCompare(b.user_name));
      if (json)
        writeJson(io.stdout, {
          target: targetKey(target),
          kind: target.kind,
          serviceAccount: access.selfUserId ?? null,
          users: users.map((user) => ({
            userId: user.user_id,
            userName: user.user_name,
            permission: permissionOfLevel(user.auth),
          })),
        });
      else {
        line(io.stdout, `${kindLabel(target)} ${targetKey(target)}: ${users.length} user(s) with access`);
        if (users.length > 0)
          for (const row of table([
            ['USER', 'USER ID', 'PERMISSION'],
            ...users.map((user) => [user.user_name, user.user_id, permissionOfLevel(user.auth)]),
          ]))
            line(io.stdout, `  ${row}`);
      }
      return ExitCodes.ok;
    }

    let user: IamUser | undefined;
    try {
      user = await findUser(swr.directory, who as string);
    } catch (error) {
      const failure = asSyncError(error);
      line(
        io.stderr,
        `swr-access show: cannot look ${JSON.stringify(who)} up in IAM (${failure.code}): ${failure.message}`,
      );
      return ExitCodes.failed;
    }
    if (user === undefined) {
      line(io.stderr, `swr-access show: IAM knows no user ${JSON.stringify(who)}`);
      return ExitCodes.failed;
    }
    const unreadable: Array<{ target: string; reason: string }> = [];
    const targets = new Map<string, Target>();
    for (const policyTarget of allPolicyTargets(swr.policy))
      targets.set(`${policyTarget.kind}:${targetKey(policyTarget)}`, policyTarget);
    for (const namespace of swr.policy.managedNamespaces) {
      targets.set(`namespace:${namespace}`, { kind: 'namespace', namespace });
      try {
        for (const repository of await swr.swr.listRepositories(namespace))
          targets.set(`repo:${namespace}/${repository}`, { kind: 'repo', namespace, repository });
      } catch (error) {
        const failure = asSyncError(error);
        unreadable.push({
          target: `${namespace} (repository list)`,
          reason: `${failure.code}: ${failure.message}`,
        });
      }
    }
    const { actual, readErrors } = await readTargets(
      [...targets.values()],
      swr.swr,
      config.swrConcurrency,
      Date.now() + 120_000,
    );
    for (const [key, error] of readErrors)
      unreadable.push({ target: key, reason: `${error.code}: ${error.message}` });
    const found = [...targets.values()]
      .flatMap((candidate) => {
        const level = actual
          .get(targetKey(candidate))
          ?.users.find((entry) => entry.user_id === user.id)?.auth;
        return level === undefined ? [] : [{ target: candidate, permission: permissionOfLevel(level) }];
      })
      .sort((a, b) =>
        a.target.kind === b.target.kind
          ? targetKey(a.target).localeCompare(targetKey(b.target))
          : a.target.kind === 'namespace'
            ? -1
            : 1,
      );
    if (json)
      writeJson(io.stdout, {
        user,
        permissions: found.map((entry) => ({
          target: targetKey(entry.target),
          kind: entry.target.kind,
          permission: entry.permission,
        })),
        checked: targets.size,
        unreadable,
      });
    else {
      line(
        io.stdout,
        `user ${user.name} (${user.id}): ${found.length} permission(s) on ${targets.size} target(s) checked`,
      );
      if (found.length > 0)
        for (const row of table([
          ['TARGET', 'KIND', 'PERMISSION'],
          ...found.map((entry) => [targetKey(entry.target), kindLabel(entry.target), entry.permission]),
        ]))
          line(io.stdout, `  ${row}`);
    }
    for (const entry of unreadable)
      line(io.stderr, `swr-access show: cannot read ${entry.target}: ${entry.reason}`);
    return unreadable.length > 0 ? ExitCodes.failed : ExitCodes.ok;
  } finally {
    await swr.close();
  }
};

export { showCommand, showUsage };
