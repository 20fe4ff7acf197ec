import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type PackageSettings, packageProblems } from '../../lib/deploy/package-guard.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const secret = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:swr-access-sync-AbCdEf';

const settingsFactory = (overrides: Partial<PackageSettings> = {}): PackageSettings => ({
  stage: 'prod',
  serviceDir: root,
  policyFile: 'test/fixtures/policies/deployable.yaml',
  policyS3Uri: '',
  credentialsSecretArn: secret,
  ...overrides,
});

describe('packageProblems', () => {
  it.each([
    { name: 'a real policy and a secret', overrides: {}, problems: [] },
    {
      name: 'the local stage, whatever it holds',
      overrides: { stage: 'local', policyFile: 'config/demo-policy.yaml', credentialsSecretArn: '' },
      problems: [],
    },
    {
      name: 'an S3 policy (the packaged file is then not read)',
      overrides: { policyFile: 'config/demo-policy.yaml', policyS3Uri: 's3://acme-policies/swr/policy.yaml' },
      problems: [],
    },
    {
      name: 'the demo policy itself',
      overrides: { policyFile: 'config/demo-policy.yaml' },
      problems: [/^the policy config\/demo-policy\.yaml is the demo policy/],
    },
    {
      name: 'config/policy.yaml while it is still the demo teams',
      overrides: { policyFile: 'config/policy.yaml' },
      problems: [/^the policy config\/policy\.yaml is the demo policy/],
    },
    {
      name: 'the demo policy reordered',
      overrides: { policyFile: 'test/fixtures/policies/demo-reordered.yaml' },
      problems: [/is the demo policy/],
    },
    {
      name: 'a policy that does not load',
      overrides: { policyFile: 'test/fixtures/policies/many-problems.yaml' },
      problems: [
        /^the policy test\/fixtures\/policies\/many-problems\.yaml does not load: invalid access policy/,
      ],
    },
    {
      name: 'a policy file that does not exist',
      overrides: { policyFile: 'config/nope.yaml' },
      problems: [/does not load: cannot read access policy .*nope\.yaml \(ENOENT\)/],
    },
    { name: 'no policy at all', overrides: { policyFile: '' }, problems: [/^POLICY_FILE is empty/] },
    {
      name: 'an S3 URI that is not one',
      overrides: { policyS3Uri: 's3://Acme/policy.yaml' },
      problems: [/^policyS3Uri bucket "Acme" is not an S3 bucket name/],
    },
    {
      name: 'an empty credentials secret',
      overrides: { credentialsSecretArn: ' ' },
      problems: [/^swrCredentialsSecretArn is empty/],
    },
  ])('$name', async ({ overrides, problems }) => {
    // Act
    const found = await packageProblems(settingsFactory(overrides));

    // Assess
    expect(found).toHaveLength(problems.length);
    problems.forEach((problem, index) => {
      expect(found[index]).toMatch(problem);
    });
  });
});
