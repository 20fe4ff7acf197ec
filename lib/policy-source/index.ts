/**
 * Where the functions and the CLI get the access policy: the file packaged with the function
 * (POLICY_FILE), or a versioned S3 object (POLICY_S3_URI) checked for a new version at most every
 * POLICY_RELOAD_SECONDS. One loader per instance, built at cold start; `load()` per invocation.
 */
import { S3Client } from '@aws-sdk/client-s3';
import type { AppConfig } from '../config.ts';
import { createFilePolicyLoader, type PolicyLoader } from '../core/policy.ts';
import type { Policy } from '../domain.ts';
import type { Log, MetricsSink } from '../observability.ts';
import { createS3PolicyLoader } from './s3-loader.ts';

interface PolicySourceDeps {
  log: Log;
  metrics: MetricsSink;
  /** The S3 client (tests, the local stack); by default one from the environment, built on first use. */
  s3?: Pick<S3Client, 'send'>;
}

/**
 * @example const policyLoader = createPolicyLoader(config, { log, metrics }); // module scope
 */
const createPolicyLoader = (
  config: Pick<AppConfig, 'policyFile' | 'policyS3' | 'policyReloadSeconds'>,
  deps: PolicySourceDeps,
): PolicyLoader & { source: string } => {
  if (config.policyS3 === undefined)
    return { ...createFilePolicyLoader(config.policyFile), source: config.policyFile };
  return {
    ...createS3PolicyLoader({
      s3: deps.s3 ?? new S3Client({}),
      object: config.policyS3,
      reloadIntervalMs: config.policyReloadSeconds * 1000,
      log: deps.log,
      metrics: deps.metrics,
    }),
    source: config.policyS3.uri,
  };
};

/**
 * What a runtime's `ready()` built, with the policy in use now: the same object when the policy
 * did not change, else a copy whose `deps.policy` is the new one (the rest is shared).
 *
 * @example return withPolicy(await ready(), await policyLoader.load());
 */
const withPolicy = <T extends { deps: { policy: Policy } }>(built: T, policy: Policy): T =>
  built.deps.policy === policy ? built : { ...built, deps: { ...built.deps, policy } };

export type { PolicySourceDeps };
export { createPolicyLoader, withPolicy };
