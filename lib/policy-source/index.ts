/**
 * Where the functions and the CLI get the access policy: the file packaged with the function
 * (POLICY_FILE), or a versioned S3 object (POLICY_S3_URI) checked for a new version at most every
 * POLICY_RELOAD_SECONDS. One loader per instance, built at cold start; `load()` per invocation.
 * The S3 loader and its client are a chunk of their own, loaded by the first `load()` when an
 * object is configured: a function reading its packaged file never parses them.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { AppConfig } from '../config.ts';
import { createFilePolicyLoader, type PolicyLoader } from '../core/policy.ts';
import type { Policy } from '../domain.ts';
import type { Log, MetricsSink } from '../observability.ts';

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
  const object = config.policyS3;
  if (object === undefined)
    return { ...createFilePolicyLoader(config.policyFile), source: config.policyFile };
  let loader: Promise<PolicyLoader> | undefined;
  const s3Loader = (): Promise<PolicyLoader> => {
    loader ??= Promise.all([import('./s3-loader.ts'), import('@aws-sdk/client-s3')]).then(
      ([{ createS3PolicyLoader }, { S3Client }]) =>
        createS3PolicyLoader({
          s3: deps.s3 ?? new S3Client({}),
          object,
          reloadIntervalMs: config.policyReloadSeconds * 1000,
          log: deps.log,
          metrics: deps.metrics,
        }),
    );
    // A chunk that failed to load is tried again by the next call.
    loader.catch(() => {
      loader = undefined;
    });
    return loader;
  };
  return { load: async () => (await s3Loader()).load(), source: object.uri };
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
