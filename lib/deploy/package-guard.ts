/**
 * What `serverless package` (and so `deploy`) refuses for any stage but `local`: the demo policy
 * (config/demo-policy.yaml, or a file that says the same), a policy that does not load, a policy
 * S3 URI that is not one, and an empty credentials secret — each would deploy a service that
 * grants demo teams, or that cannot start. Run by lib/deploy/serverless-plugin.mjs.
 */
import { resolve } from 'node:path';
import { loadPolicyFile } from '../core/policy.ts';
import type { Policy } from '../domain.ts';
import { ConfigError } from '../errors.ts';
import { parseS3Uri } from '../policy-source/s3-uri.ts';

/** The stage that is never deployed: `serverless invoke local` against the local stack. */
const localStage = 'local';

const demoPolicyFile = 'config/demo-policy.yaml';

interface PackageSettings {
  stage: string;
  /** The service folder (serverless.yml); relative paths are taken from there. */
  serviceDir: string;
  /** POLICY_FILE as the functions get it. */
  policyFile: string | undefined;
  /** POLICY_S3_URI as the functions get it ('' or unset: none). */
  policyS3Uri: string | undefined;
  /** SWR_CREDENTIALS_SECRET_ARN as the functions get it ('' or unset: none). */
  credentialsSecretArn: string | undefined;
}

/** A policy's meaning, whatever its comments, layout, order or file name. */
const meaningOf = (policy: Policy): string => {
  const teams = Object.keys(policy.teams)
    .sort()
    .map((team) => [
      team,
      (policy.teams[team] ?? [])
        .map((grant) => JSON.stringify([grant.target, grant.level, grant.exclusive]))
        .sort(),
    ]);
  return JSON.stringify([[...policy.protectedUsers].sort(), [...policy.managedNamespaces].sort(), teams]);
};

/**
 * Every reason to refuse, empty when the package may be built.
 *
 * @example
 * const problems = await packageProblems({ stage: 'prod', serviceDir, policyFile: 'config/policy.yaml', policyS3Uri: '', credentialsSecretArn: '' });
 * // ['the policy config/policy.yaml is the demo policy …', 'swrCredentialsSecretArn is empty …']
 */
const packageProblems = async (settings: PackageSettings): Promise<string[]> => {
  if (settings.stage === localStage) return [];
  const problems: string[] = [];
  const s3Uri = settings.policyS3Uri?.trim() ?? '';
  if (s3Uri !== '') {
    // The functions read the object, not the packaged file; it cannot be read offline.
    const parsed = parseS3Uri(s3Uri);
    if (!parsed.ok) problems.push(`policyS3Uri ${parsed.problem} (got ${JSON.stringify(s3Uri)})`);
  } else if (settings.policyFile === undefined || settings.policyFile.trim() === '') {
    problems.push('POLICY_FILE is empty: the functions would have no policy');
  } else {
    const path = settings.policyFile.trim();
    try {
      const [policy, demo] = await Promise.all([
        loadPolicyFile(resolve(settings.serviceDir, path)),
        loadPolicyFile(resolve(settings.serviceDir, demoPolicyFile)),
      ]);
      if (meaningOf(policy) === meaningOf(demo))
        problems.push(
          `the policy ${path} is the demo policy (the same teams and grants as ${demoPolicyFile}): write your own teams, or pass --param="policyFile=FILE" or --param="policyS3Uri=s3://bucket/key"`,
        );
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(
        `the policy ${path} does not load: ${[error.message.split('\n')[0], ...error.problems].join('; ')}`,
      );
    }
  }
  if ((settings.credentialsSecretArn?.trim() ?? '') === '')
    problems.push(
      'swrCredentialsSecretArn is empty: the functions would start without SWR credentials; pass --param="swrCredentialsSecretArn=arn:aws:secretsmanager:…"',
    );
  return problems;
};

export type { PackageSettings };
export { demoPolicyFile, localStage, meaningOf, packageProblems };
