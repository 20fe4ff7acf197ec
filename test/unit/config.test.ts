import { describe, expect, it } from 'vitest';
import { authFromSecret, readConfig } from '../../lib/config.ts';
import { ConfigError } from '../../lib/errors.ts';
import { redactSecrets } from '../../lib/redact.ts';

const secretToken = 'tok-SECRET-9f8e7d';
const secretPassword = 'pw-SECRET-1a2b3c';
const secretSk = 'sk-SECRET-4d5e6f';
const domainId = 'd0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0';

const envFactory = (
  overrides: Record<string, string | undefined> = {},
): Record<string, string | undefined> => ({
  SWR_ENDPOINT: 'https://swr-api.eu-west-101.myhuaweicloud.eu',
  IAM_ENDPOINT: 'https://iam.myhuaweicloud.eu',
  SWR_AUTH_TOKEN: secretToken,
  POLICY_FILE: 'config/policy.yaml',
  TABLE_NAME: 'memberships',
  ACCESS_CHANGES_DLQ_URL: 'https://sqs.eu-west-1.amazonaws.com/1/access-changes-dlq.fifo',
  ...overrides,
});

const problemsOf = (env: Record<string, string | undefined>): string[] => {
  try {
    readConfig(env, { require: { tableName: true, dlqUrls: true } });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
};

describe('readConfig', () => {
  it('reads a valid environment with defaults', () => {
    // Act
    const config = readConfig(envFactory({ SWR_ENDPOINT: '  https://swr-api.example.com  ' }));

    // Assess
    expect(config.swrEndpoint).toBe('https://swr-api.example.com');
    expect(config.credentials).toEqual({ kind: 'token', token: secretToken });
    expect(config.swrConcurrency).toBe(8);
    expect(config.retry).toEqual({ maxAttempts: 4, baseDelayMs: 200, maxDelayMs: 5000 });
    expect(config.swrRateLimit).toEqual({ ratePerSecond: 20, burst: 10, adaptive: true });
    expect(config.dryRun).toBe(false);
  });

  it('reads the SWR rate limit', () => {
    // Act
    const config = readConfig(envFactory({ SWR_MAX_RPS: '25', SWR_BURST: '5' }));

    // Assess
    expect(config.swrRateLimit).toEqual({ ratePerSecond: 25, burst: 5, adaptive: true });
  });

  it.each([
    ['false', false],
    ['0', false],
    ['true', true],
    ['  ', true],
  ])('reads SWR_ADAPTIVE_RATE=%j as %s', (value, adaptive) => {
    // Act
    const config = readConfig(envFactory({ SWR_ADAPTIVE_RATE: value }));

    // Assess
    expect(config.swrRateLimit.adaptive).toBe(adaptive);
  });

  it('refuses an SWR_ADAPTIVE_RATE that is not a boolean', () => {
    // Act
    const problems = problemsOf(envFactory({ SWR_ADAPTIVE_RATE: 'sometimes' }));

    // Assess
    expect(problems.some((problem) => problem.startsWith('SWR_ADAPTIVE_RATE'))).toBe(true);
  });

  it.each([
    ['SWR_MAX_RPS', '0'],
    ['SWR_MAX_RPS', 'fast'],
    ['SWR_BURST', '0'],
    ['SWR_BURST', '10001'],
  ])('refuses %s=%s', (name, value) => {
    // Act
    const problems = problemsOf(envFactory({ [name]: value }));

    // Assess
    expect(problems.some((problem) => problem.startsWith(`${name}:`))).toBe(true);
  });

  it('reads the account id for AK/SK and signs IAM calls with it', () => {
    // Act
    const config = readConfig(
      envFactory({
        SWR_AUTH_TOKEN: undefined,
        HUAWEICLOUD_SDK_AK: 'AKEXAMPLE',
        HUAWEICLOUD_SDK_SK: secretSk,
        HUAWEICLOUD_PROJECT_ID: 'p1',
        HUAWEICLOUD_DOMAIN_ID: domainId,
      }),
    );

    // Assess
    expect(config.credentials).toMatchObject({ kind: 'aksk', projectId: 'p1', domainId });
  });

  it.each([
    [undefined, 'HUAWEICLOUD_DOMAIN_ID is required for AK/SK signing'],
    [
      'acme-account',
      'HUAWEICLOUD_DOMAIN_ID must be the account ID (32 lowercase hexadecimal characters), not its name',
    ],
  ])('refuses AK/SK with HUAWEICLOUD_DOMAIN_ID=%j', (value, problem) => {
    // Act
    const problems = problemsOf(
      envFactory({
        SWR_AUTH_TOKEN: undefined,
        HUAWEICLOUD_SDK_AK: 'AKEXAMPLE',
        HUAWEICLOUD_SDK_SK: secretSk,
        HUAWEICLOUD_PROJECT_ID: 'p1',
        HUAWEICLOUD_DOMAIN_ID: value,
      }),
    );

    // Assess
    expect(problems).toContain(problem);
  });

  it('registers the secret values it reads, so upstream text quoting them is redacted', () => {
    // Prepare
    const password = 'pw-REGISTERED-77aa';
    const sk = 'sk-REGISTERED-88bb';

    // Act
    try {
      readConfig(envFactory({ SWR_AUTH_TOKEN: undefined, HUAWEICLOUD_IAM_PASSWORD: password }));
    } catch {
      // Incomplete on purpose: the password is registered before any check.
    }
    authFromSecret(
      JSON.stringify({
        HUAWEICLOUD_SDK_AK: 'AK',
        HUAWEICLOUD_SDK_SK: sk,
        HUAWEICLOUD_PROJECT_ID: 'p',
        HUAWEICLOUD_DOMAIN_ID: domainId,
      }),
    );

    // Assess
    expect(redactSecrets(`IAM said: wrong password ${password}; sk ${sk}`)).toBe(
      'IAM said: wrong password [REDACTED]; sk [REDACTED]',
    );
  });

  it.each([
    {
      name: 'password',
      env: {
        SWR_AUTH_TOKEN: undefined,
        HUAWEICLOUD_IAM_DOMAIN: 'acme',
        HUAWEICLOUD_IAM_USER: 'sync',
        HUAWEICLOUD_IAM_PASSWORD: secretPassword,
        HUAWEICLOUD_PROJECT: 'eu-west-101',
      },
      kind: 'password',
    },
    {
      name: 'AK/SK',
      env: {
        SWR_AUTH_TOKEN: undefined,
        HUAWEICLOUD_SDK_AK: 'AKEXAMPLE',
        HUAWEICLOUD_SDK_SK: secretSk,
        HUAWEICLOUD_PROJECT_ID: '0123',
        HUAWEICLOUD_DOMAIN_ID: domainId,
      },
      kind: 'aksk',
    },
    {
      name: 'secret ARN',
      env: {
        SWR_AUTH_TOKEN: undefined,
        SWR_CREDENTIALS_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:1:secret:swr',
      },
      kind: 'secret',
    },
  ])('chooses $name credentials', ({ env, kind }) => {
    expect(readConfig(envFactory(env)).credentials.kind).toBe(kind);
  });

  it('lists every problem at once, and never a secret value', () => {
    // Prepare
    const env = envFactory({
      SWR_ENDPOINT: 'http://swr-api.example.com',
      IAM_ENDPOINT: undefined,
      HUAWEICLOUD_SDK_AK: 'AK',
      HUAWEICLOUD_SDK_SK: secretSk,
      TABLE_NAME: undefined,
      RETRY_BASE_DELAY_MS: '900',
      RETRY_MAX_DELAY_MS: '100',
    });

    // Act
    const problems = problemsOf(env);

    // Assess
    expect(problems).toEqual([
      'SWR_ENDPOINT must use https: unless the host is loopback (127.0.0.0/8, localhost, ::1)',
      'IAM_ENDPOINT is required',
      'more than one kind of credentials is set (SWR_AUTH_TOKEN, HUAWEICLOUD_SDK_AK/SK): keep exactly one',
      'TABLE_NAME is required',
      'RETRY_MAX_DELAY_MS must not be smaller than RETRY_BASE_DELAY_MS',
    ]);
    expect(problems.join('\n')).not.toContain(secretSk);
    expect(problems.join('\n')).not.toContain(secretToken);
  });

  it('names a malformed number and shows its value, but hides a malformed secret', () => {
    // Act
    const problems = problemsOf(envFactory({ SWR_MAX_CONCURRENCY: 'lots', DRY_RUN: 'maybe' }));

    // Assess
    expect(
      problems.some((problem) => problem.startsWith('SWR_MAX_CONCURRENCY') && problem.includes('"lots"')),
    ).toBe(true);
    expect(problems.some((problem) => problem.startsWith('DRY_RUN'))).toBe(true);
  });

  it.each([
    ['http://127.0.0.1:4010', true],
    ['http://localhost:4010', true],
    ['http://[::1]:4010', true],
    ['https://swr-api.example.com', true],
    ['http://10.0.0.1:4010', false],
    ['http://127.example.com:4010', false],
    ['https://swr-api.example.com/v2', false],
    ['https://user:pw@swr-api.example.com', false],
    ['ftp://swr-api.example.com', false],
  ])('endpoint %s accepted: %s', (endpoint, accepted) => {
    expect(problemsOf(envFactory({ SWR_ENDPOINT: endpoint })).length === 0).toBe(accepted);
  });

  it('hides a long value even in a variable that is not secret (a secret pasted in the wrong place)', () => {
    // Act
    const problems = problemsOf(envFactory({ RETRY_MAX_ATTEMPTS: secretPassword.repeat(2) }));

    // Assess
    expect(problems.join('\n')).toContain('RETRY_MAX_ATTEMPTS');
    expect(problems.join('\n')).not.toContain(secretPassword);
  });

  it('requires the whole password set and pairs the agency variables', () => {
    // Act
    const problems = problemsOf(
      envFactory({
        SWR_AUTH_TOKEN: undefined,
        HUAWEICLOUD_IAM_USER: 'sync',
        HUAWEICLOUD_IAM_PASSWORD: secretPassword,
        HUAWEICLOUD_IAM_AGENCY: 'swr-admin',
      }),
    );

    // Assess
    expect(problems).toContain('HUAWEICLOUD_IAM_DOMAIN is required for an IAM password token');
    expect(problems).toContain('HUAWEICLOUD_PROJECT is required for an IAM password token');
    expect(problems).toContain('HUAWEICLOUD_IAM_AGENCY and HUAWEICLOUD_IAM_AGENCY_DOMAIN go together');
    expect(problems.join('\n')).not.toContain(secretPassword);
  });
});

describe('authFromSecret', () => {
  it('reads the same keys as the environment', () => {
    expect(authFromSecret(JSON.stringify({ SWR_AUTH_TOKEN: secretToken }))).toEqual({
      kind: 'token',
      token: secretToken,
    });
  });

  it('names missing keys without echoing the secret', () => {
    // Act
    const error = (() => {
      try {
        authFromSecret(JSON.stringify({ HUAWEICLOUD_SDK_SK: secretSk }));
      } catch (caught) {
        return caught as ConfigError;
      }
    })();

    // Assess
    expect(error?.problems).toContain('HUAWEICLOUD_SDK_AK is required for AK/SK signing');
    expect(error?.message).not.toContain(secretSk);
  });

  it('rejects a secret that is not JSON without quoting it', () => {
    expect(() => authFromSecret(`not json ${secretSk}`)).toThrow(/not a JSON object$/);
  });
});
