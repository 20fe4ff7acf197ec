/**
 * The access policy read from a versioned S3 object, so a policy change needs no redeploy.
 *
 * Each instance checks the object at most once per `reloadIntervalMs` with a conditional GET
 * (`If-None-Match` on the ETag in use): 304 keeps the policy in use; a new version is parsed with
 * the same rules as a packaged file and used only if it is valid. A version that is not valid, or
 * an object that cannot be read, never replaces a good policy: the last good one stays in use, and
 * the failure is logged as an error with `alarm: 'policy'` and counted as `PolicyReloadFailed`
 * (an alarm reads it) on every check until the object is fixed. Without a good policy yet (cold
 * start) there is nothing to keep: the load fails, and so does the invocation, naming the problem.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { type PolicyLoader, parsePolicyText } from '../core/policy.ts';
import type { Policy } from '../domain.ts';
import { ConfigError, ErrorCodes } from '../errors.ts';
import { type Log, MetricNames, type MetricsSink } from '../observability.ts';
import type { S3ObjectRef } from './s3-uri.ts';

interface S3PolicyLoaderOptions {
  s3: Pick<S3Client, 'send'>;
  object: S3ObjectRef;
  /** Least time between two checks of the object (POLICY_RELOAD_SECONDS). */
  reloadIntervalMs: number;
  log: Log;
  metrics: MetricsSink;
  /** Epoch ms (tests). */
  now?: () => number;
}

/** A policy is a page of YAML; anything this large is not one, and is not read into memory. */
const maxPolicyBytes = 1024 * 1024;

interface InUse {
  policy: Policy;
  etag: string | undefined;
  versionId: string | undefined;
  checkedAt: number;
}

const isNotModified = (error: unknown): boolean =>
  (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode === 304 ||
  (error as { name?: string })?.name === 'NotModified';

const describe = (error: unknown): string =>
  error instanceof ConfigError
    ? error.problems.length > 0
      ? error.problems.slice(0, 20).join('; ')
      : error.message
    : error instanceof Error
      ? `${error.name}: ${error.message}`
      : String(error);

/**
 * @example
 * const loader = createS3PolicyLoader({ s3: new S3Client({}), object, reloadIntervalMs: 60_000, log, metrics });
 * const policy = await loader.load(); // per invocation: cheap between checks
 */
const createS3PolicyLoader = (options: S3PolicyLoaderOptions): PolicyLoader => {
  const { s3, object, log, metrics } = options;
  const now = options.now ?? Date.now;
  let inUse: InUse | undefined;
  let checking: Promise<Policy> | undefined;

  const sourceOf = (versionId: string | undefined): string =>
    versionId === undefined ? object.uri : `${object.uri}?versionId=${versionId}`;

  /** Keeps the policy in use after a failed check, alarmed; without one, the failure is thrown. */
  const refuse = (message: string, error: unknown, details: Record<string, unknown>): Policy => {
    metrics.count(MetricNames.policyReloadFailed);
    log.error(message, {
      alarm: 'policy',
      policySource: object.uri,
      inUse: inUse === undefined ? 'none' : sourceOf(inUse.versionId),
      reason: describe(error),
      ...details,
    });
    if (inUse === undefined) throw error;
    inUse = { ...inUse, checkedAt: now() };
    return inUse.policy;
  };

  const check = async (): Promise<Policy> => {
    let text: string;
    let etag: string | undefined;
    let versionId: string | undefined;
    try {
      const answer = await s3.send(
        new GetObjectCommand({
          Bucket: object.bucket,
          Key: object.key,
          ...(inUse?.etag === undefined ? {} : { IfNoneMatch: inUse.etag }),
        }),
      );
      if ((answer.ContentLength ?? 0) > maxPolicyBytes) {
        await answer.Body?.transformToByteArray().catch(() => undefined);
        throw new ConfigError(
          `the policy object ${object.uri} is larger than ${maxPolicyBytes} bytes`,
          [],
          ErrorCodes.policy,
        );
      }
      text = (await answer.Body?.transformToString('utf8')) ?? '';
      etag = answer.ETag;
      versionId = answer.VersionId;
    } catch (error) {
      if (inUse !== undefined && isNotModified(error)) {
        inUse = { ...inUse, checkedAt: now() };
        return inUse.policy;
      }
      const failure =
        error instanceof ConfigError
          ? error
          : new ConfigError(
              `cannot read access policy ${object.uri} (${(error as Error)?.name ?? 'read failed'})`,
              [],
              ErrorCodes.policy,
              { cause: error },
            );
      return refuse(
        inUse === undefined
          ? 'access policy could not be read from S3'
          : 'access policy could not be re-read from S3; keeping the last good one',
        failure,
        {},
      );
    }
    let policy: Policy;
    try {
      policy = await parsePolicyText(text, sourceOf(versionId));
    } catch (error) {
      return refuse(
        inUse === undefined
          ? 'access policy in S3 is not valid'
          : 'new access policy version refused; keeping the last good one',
        error,
        { etag, versionId },
      );
    }
    if (inUse !== undefined) {
      metrics.count(MetricNames.policyReloaded);
      log.info('access policy reloaded', {
        policySource: sourceOf(versionId),
        previous: sourceOf(inUse.versionId),
        etag,
        teams: Object.keys(policy.teams).length,
      });
    }
    inUse = { policy, etag, versionId, checkedAt: now() };
    return policy;
  };

  return {
    load() {
      if (inUse !== undefined && now() - inUse.checkedAt < options.reloadIntervalMs)
        return Promise.resolve(inUse.policy);
      // Concurrent callers share one check.
      if (checking === undefined) {
        checking = check().finally(() => {
          checking = undefined;
        });
      }
      return checking;
    },
  };
};

export type { S3PolicyLoaderOptions };
export { createS3PolicyLoader, maxPolicyBytes };
