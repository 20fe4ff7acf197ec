import { describe, expect, it } from 'vitest';
import { ErrorCodes, SyncError } from '../../lib/errors.ts';
import {
  AuthError,
  errorFromResponse,
  errorFromTransport,
  isExistsConflict,
  isMissingPermission,
  NetworkError,
  parseErrorBody,
  parseRetryAfter,
  SwrApiError,
  TimeoutError,
} from '../../lib/swr/api-errors.ts';

const failureFactory = (overrides: Partial<Parameters<typeof errorFromResponse>[0]> = {}) => ({
  service: 'SWR' as const,
  status: 500,
  method: 'POST',
  target: 'core/team/api',
  body: '',
  now: Date.UTC(2024, 0, 1),
  ...overrides,
});

const swrBody = (code: string, message = 'detail') =>
  JSON.stringify({ error_code: code, error_msg: message });

describe('parseErrorBody', () => {
  it.each([
    [
      'errors array with error_code',
      '{"errors":[{"errorCode":"SVCSTG.SWR.4030170","errorMessage":"not allowed"}],"error_code":"SVCSTG.SWR.4030170","error_msg":"not allowed"}',
      { code: 'SVCSTG.SWR.4030170', message: 'not allowed' },
    ],
    [
      'error_code only',
      '{"error_code":"SVCSTG.SWR.4040010","error_msg":"repo not found"}',
      { code: 'SVCSTG.SWR.4040010', message: 'repo not found' },
    ],
    [
      'bare array',
      '[{"errorCode":"SVCSTG.SWR.4090089","errorMessage":"exists"}]',
      { code: 'SVCSTG.SWR.4090089', message: 'exists' },
    ],
    [
      'IAM error object',
      '{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}',
      { code: undefined, message: 'The request you have made requires authentication.' },
    ],
    [
      'HTML page',
      '<html><body>502 Bad Gateway</body></html>',
      {
        code: undefined,
        message: '<html><body>502 Bad Gateway</body></html>',
      },
    ],
    ['empty body', '', { code: undefined, message: undefined }],
    ['JSON without codes', '{"status":"weird"}', { code: undefined, message: undefined }],
  ])('reads %s', (_shape, body, expected) => {
    // Act
    const parsed = parseErrorBody(body);

    // Assess
    expect(parsed).toEqual(expected);
  });

  it('clips a huge body', () => {
    // Act
    const parsed = parseErrorBody('x'.repeat(10_000));

    // Assess
    expect(parsed.message?.length).toBeLessThanOrEqual(300);
  });
});

describe('errorFromResponse classification', () => {
  it.each([
    [429, swrBody('APIGW.0308'), 'APIGW.0308', true],
    [429, '', 'HTTP_429', true],
    [500, swrBody('SVCSTG.SWR.5000090'), 'SVCSTG.SWR.5000090', true],
    [502, '<html>bad gateway</html>', 'HTTP_502', true],
    [503, '', 'HTTP_503', true],
    [409, swrBody('SVCSTG.SWR.4090023'), 'SVCSTG.SWR.4090023', true],
    [403, swrBody('SVCSTG.SWR.4031032'), 'SVCSTG.SWR.4031032', true],
    [403, swrBody('SVCSTG.SWR.4031042'), 'SVCSTG.SWR.4031042', true],
    [403, swrBody('SVCSTG.SWR.4030170'), 'SVCSTG.SWR.4030170', false],
    [403, swrBody('SVCSTG.SWR.4039001'), 'SVCSTG.SWR.4039001', false],
    [403, '', 'HTTP_403', false],
    [409, swrBody('SVCSTG.SWR.4090089'), 'SVCSTG.SWR.4090089', false],
    [400, swrBody('SVCSTG.SWR.4001065'), 'SVCSTG.SWR.4001065', false],
    [400, swrBody('SVCSTG.SWR.4000014'), 'SVCSTG.SWR.4000014', false],
    [404, swrBody('SVCSTG.SWR.4040010'), 'SVCSTG.SWR.4040010', false],
    [404, swrBody('SVCSTG.SWR.4040113'), 'SVCSTG.SWR.4040113', false],
    [404, swrBody('SVCSTG.SWR.4040058'), 'SVCSTG.SWR.4040058', false],
    [404, swrBody('SVCSTG.SWR.4041061'), 'SVCSTG.SWR.4041061', false],
    [404, swrBody('SVCSTG.SWR.4040091'), 'SVCSTG.SWR.4040091', false],
  ])('%d %s → code %s, retryable %s', (status, body, code, retryable) => {
    // Act
    const error = errorFromResponse(failureFactory({ status, body }));

    // Assess
    expect(error).toBeInstanceOf(SwrApiError);
    expect(error).toBeInstanceOf(SyncError);
    expect(error).toMatchObject({ status, code, retryable, target: 'core/team/api', method: 'POST' });
    expect(error.message).toContain(code);
  });

  it.each([
    [swrBody('SVCSTG.SWR.4010000'), 'SVCSTG.SWR.4010000'],
    ['', ErrorCodes.auth],
  ])('401 with %j is a permanent AuthError %s', (body, code) => {
    // Act
    const error = errorFromResponse(failureFactory({ status: 401, body }));

    // Assess
    expect(error).toBeInstanceOf(AuthError);
    expect(error).toMatchObject({ status: 401, code, retryable: false });
  });

  it('keeps Retry-After for the retry loop', () => {
    // Act
    const error = errorFromResponse(failureFactory({ status: 429, retryAfter: '3' }));

    // Assess
    expect(error.retryAfterMs).toBe(3000);
  });

  it.each([
    ['exists on repository', 409, 'SVCSTG.SWR.4090089', true, false],
    ['exists on namespace', 409, 'SVCSTG.SWR.4090076', true, false],
    ['missing on repository', 404, 'SVCSTG.SWR.4040091', false, true],
    ['missing on namespace', 404, 'SVCSTG.SWR.4040078', false, true],
    ['repository not found', 404, 'SVCSTG.SWR.4040010', false, false],
    ['busy', 409, 'SVCSTG.SWR.4090023', false, false],
  ])('recognises %s', (_what, status, code, exists, missing) => {
    // Prepare
    const error = errorFromResponse(failureFactory({ status, body: swrBody(code) }));

    // Act & Assess
    expect(isExistsConflict(error)).toBe(exists);
    expect(isMissingPermission(error)).toBe(missing);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.UTC(2024, 0, 1, 12, 0, 0);

  it.each([
    ['seconds', '5', 5000],
    ['zero', '0', 0],
    ['HTTP date', 'Mon, 01 Jan 2024 12:00:07 GMT', 7000],
    ['date in the past', 'Mon, 01 Jan 2024 11:00:00 GMT', 0],
    ['garbage', 'soon', undefined],
    ['absent', undefined, undefined],
    ['array', ['2', '9'], 2000],
  ])('reads %s', (_what, value, expected) => {
    // Act & Assess
    expect(parseRetryAfter(value, now)).toBe(expected);
  });
});

describe('errorFromTransport', () => {
  const context = { service: 'SWR' as const, method: 'GET', target: 'core' };

  it.each([
    ['UND_ERR_HEADERS_TIMEOUT', TimeoutError, ErrorCodes.timeout],
    ['UND_ERR_BODY_TIMEOUT', TimeoutError, ErrorCodes.timeout],
    ['UND_ERR_CONNECT_TIMEOUT', TimeoutError, ErrorCodes.timeout],
    ['ECONNRESET', NetworkError, ErrorCodes.network],
    ['UND_ERR_SOCKET', NetworkError, ErrorCodes.network],
  ])('maps %s', (code, type, ourCode) => {
    // Prepare
    const low = Object.assign(new Error('low level'), { code });

    // Act
    const error = errorFromTransport(low, context);

    // Assess
    expect(error).toBeInstanceOf(type);
    expect(error).toMatchObject({ code: ourCode, retryable: true, target: 'core' });
    expect(error.cause).toBe(low);
  });

  it('does not copy the low-level message, which may echo request headers', () => {
    // Prepare
    const low = Object.assign(
      new Error('Mock dispatch not matched for headers {"X-Auth-Token":"secret-token"}'),
      {
        code: 'UND_MOCK_ERR_MOCK_NOT_MATCHED',
      },
    );

    // Act
    const error = errorFromTransport(low, context);

    // Assess
    expect(error.message).not.toContain('secret-token');
    expect(JSON.stringify(error)).not.toContain('secret-token');
  });

  it('passes our own errors through', () => {
    // Prepare
    const ours = new SwrApiError({
      service: 'SWR',
      status: 500,
      code: undefined,
      serverMessage: undefined,
      method: 'GET',
      target: 'core',
      retryable: true,
    });

    // Act & Assess
    expect(errorFromTransport(ours, context)).toBe(ours);
  });
});
