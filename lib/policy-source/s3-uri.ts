/**
 * Where a policy object lives in S3: `s3://<bucket>/<key>`, checked with the S3 bucket naming
 * rules so that a typo fails the start (and `serverless package`) instead of every reload.
 */

interface S3ObjectRef {
  bucket: string;
  key: string;
  /** The URI as given (`s3://bucket/key`). */
  uri: string;
}

const bucketPattern = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * Returns the object, or the rule the value breaks.
 *
 * @example parseS3Uri('s3://acme-policies/swr/policy.yaml') // { ok: true, ref: { bucket: 'acme-policies', key: 'swr/policy.yaml', … } }
 */
const parseS3Uri = (value: string): { ok: true; ref: S3ObjectRef } | { ok: false; problem: string } => {
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(value);
  if (match === null) return { ok: false, problem: 'must be s3://<bucket>/<key>' };
  const [, bucket = '', key = ''] = match;
  if (!bucketPattern.test(bucket) || bucket.includes('..'))
    return {
      ok: false,
      problem: `bucket ${JSON.stringify(bucket)} is not an S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens)`,
    };
  if (key.endsWith('/')) return { ok: false, problem: 'the key names a folder, not an object' };
  return { ok: true, ref: { bucket, key, uri: value } };
};

export type { S3ObjectRef };
export { parseS3Uri };
