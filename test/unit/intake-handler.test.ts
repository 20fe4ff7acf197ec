/**
 * The intake's Lambda handler with API Gateway HTTP API (payload v2) events: routing, the checks
 * it makes itself (the IAM authorizer's mark on /events, tokens, body size, base64 bodies), and
 * the 5xx answers that make identity providers retry.
 */
import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../../lib/core/policy-yaml.ts';
import { handleIntakeEvent, type IntakeEvent, type IntakeRuntime } from '../../lib/intake/handler.ts';
import { createOktaHook } from '../../lib/intake/okta.ts';
import { createMemoryScimStore } from '../../lib/intake/scim/memory-store.ts';
import { createScimService } from '../../lib/intake/scim/service.ts';
import { createMemoryTelemetry } from '../../lib/observability.ts';
import { fixedDirectory, oktaDelivery, oktaEvent, recordingProducer } from '../support/intake.ts';

const scimToken = 'scim-token-0123456789abcdef0123456789';
const oktaHookSecret = 'okta-secret-0123456789abcdef0123456789';
const policy = parsePolicy(
  'version: 1\nidentity: { iamName: emailLocalPart }\nteams:\n  data:\n    idpGroups: [test1]\n',
  'handler-test.yaml',
);
const test = { id: '0c1a000000000000000000000000c003', name: 'test' };

const setup = (options: { failReady?: boolean } = {}) => {
  const producer = recordingProducer();
  const iam = fixedDirectory([test]);
  const telemetry = createMemoryTelemetry();
  const runtime: IntakeRuntime = {
    log: telemetry.log,
    metrics: telemetry.metrics,
    ready: async () => {
      if (options.failReady) throw new Error('secret not readable yet');
      return {
        scim: createScimService({
          store: createMemoryScimStore(),
          producer: producer.producer,
          directory: iam.directory,
          policy,
          log: telemetry.log,
          metrics: telemetry.metrics,
          clock: () => new Date(),
          newId: () => crypto.randomUUID(),
        }),
        okta: createOktaHook({
          directory: iam.directory,
          policy,
          log: telemetry.log,
          metrics: telemetry.metrics,
          suspend: 'offboard',
        }),
        producer: producer.producer,
        secrets: { scimToken, oktaHookSecret },
      };
    },
  };
  const invoke = (event: Partial<IntakeEvent> & { method?: string; iam?: boolean }) =>
    handleIntakeEvent(
      {
        version: '2.0',
        routeKey: '$default',
        rawPath: event.rawPath ?? '/',
        rawQueryString: event.rawQueryString ?? '',
        headers: event.headers ?? {},
        isBase64Encoded: event.isBase64Encoded ?? false,
        ...(event.body === undefined ? {} : { body: event.body }),
        requestContext: {
          domainName: 'abc123.execute-api.eu-west-1.amazonaws.com',
          http: { method: event.method ?? 'GET', path: event.rawPath ?? '/' },
          ...(event.iam ? { authorizer: { iam: { userArn: 'arn:aws:iam::123456789012:role/hr' } } } : {}),
        },
      } as unknown as IntakeEvent,
      {} as Context,
      runtime,
    );
  return { producer, telemetry, invoke };
};

const ourEvent = {
  id: 'hr-1',
  type: 'membership.added',
  occurredAt: new Date(Date.now() - 60_000).toISOString(),
  user: { name: 'test' },
  team: 'data',
};

describe('intake handler', () => {
  it('refuses /events without the IAM authorizer, whatever the body (defence in depth)', async () => {
    // Prepare
    const { invoke, producer } = setup();

    // Act
    const result = await invoke({ rawPath: '/events', method: 'POST', body: JSON.stringify([ourEvent]) });

    // Assess
    expect(result.statusCode).toBe(403);
    expect(producer.sent).toEqual([]);
  });

  it('queues our own events behind the IAM authorizer', async () => {
    // Prepare
    const { invoke, producer } = setup();

    // Act
    const result = await invoke({
      rawPath: '/events',
      method: 'POST',
      iam: true,
      body: JSON.stringify([ourEvent]),
    });

    // Assess
    expect(result.statusCode).toBe(202);
    expect(JSON.parse(result.body ?? '{}')).toEqual({ accepted: 1, accessChanges: 1, offboarding: 0 });
    expect(producer.events().map((event) => event.id)).toEqual(['hr-1']);
  });

  it.each([
    ['not an array', JSON.stringify(ourEvent), 400],
    ['an empty array', '[]', 400],
    ['not JSON', '[{', 400],
  ])('answers %s on /events with %i', async (_name, body, status) => {
    // Prepare
    const { invoke } = setup();

    // Act
    const result = await invoke({ rawPath: '/events', method: 'POST', iam: true, body });

    // Assess
    expect(result.statusCode).toBe(status);
  });

  it('answers 503 on /events when the queue refuses, naming the entries to send again', async () => {
    // Prepare
    const { invoke, producer } = setup();
    producer.failNext(1);

    // Act
    const result = await invoke({
      rawPath: '/events',
      method: 'POST',
      iam: true,
      body: JSON.stringify([ourEvent]),
    });

    // Assess
    expect(result.statusCode).toBe(503);
    expect(JSON.parse(result.body ?? '{}')).toMatchObject({ failed: [0] });
  });

  it('reads a base64 body, takes "bearer" in any case, and answers SCIM with application/scim+json', async () => {
    // Prepare
    const { invoke } = setup();
    const user = { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'test@this.com' };

    // Act
    const result = await invoke({
      rawPath: '/scim/v2/Users',
      method: 'POST',
      headers: { authorization: `bearer ${scimToken}` },
      isBase64Encoded: true,
      body: Buffer.from(JSON.stringify(user)).toString('base64'),
    });

    // Assess
    expect(result.statusCode).toBe(201);
    expect(result.headers?.['content-type']).toBe('application/scim+json');
    const created = JSON.parse(result.body ?? '{}') as { meta: { location: string } };
    expect(created.meta.location).toMatch(
      /^https:\/\/abc123\.execute-api\.eu-west-1\.amazonaws\.com\/scim\/v2\/Users\//,
    );
  });

  it.each([
    ['no Authorization', {}],
    ['a wrong token', { authorization: 'Bearer not-it' }],
    ['the Okta hook secret', { authorization: `Bearer ${oktaHookSecret}` }],
    ['Basic auth', { authorization: `Basic ${Buffer.from(`x:${scimToken}`).toString('base64')}` }],
  ])('answers 401 without detail to %s on SCIM', async (_name, headers) => {
    // Prepare
    const { invoke } = setup();

    // Act
    const result = await invoke({ rawPath: '/scim/v2/Users', headers });

    // Assess
    expect(result.statusCode).toBe(401);
    expect(JSON.parse(result.body ?? '{}')).toEqual({
      schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'],
      status: '401',
    });
  });

  it('answers 413 to a body over 1 MiB, on every route', async () => {
    // Prepare
    const { invoke } = setup();
    const body = 'x'.repeat(1024 * 1024 + 1);

    // Act
    const results = await Promise.all([
      invoke({
        rawPath: '/scim/v2/Users',
        method: 'POST',
        headers: { authorization: `Bearer ${scimToken}` },
        body,
      }),
      invoke({ rawPath: '/hooks/okta', method: 'POST', headers: { authorization: oktaHookSecret }, body }),
      invoke({ rawPath: '/events', method: 'POST', iam: true, body }),
    ]);

    // Assess
    expect(results.map((result) => result.statusCode)).toEqual([413, 413, 413]);
  });

  it('answers 404 elsewhere and 405 to methods a route does not take', async () => {
    // Prepare
    const { invoke } = setup();

    // Act
    const unknown = await invoke({ rawPath: '/admin' });
    const put = await invoke({
      rawPath: '/hooks/okta',
      method: 'PUT',
      headers: { authorization: oktaHookSecret },
    });
    const get = await invoke({ rawPath: '/events', method: 'GET', iam: true });

    // Assess
    expect([unknown.statusCode, put.statusCode, get.statusCode]).toEqual([404, 405, 405]);
  });

  it('answers 503 when it cannot start (a secret not readable yet), so the provider retries', async () => {
    // Prepare
    const { invoke } = setup({ failReady: true });

    // Act
    const scim = await invoke({
      rawPath: '/scim/v2/Users',
      headers: { authorization: `Bearer ${scimToken}` },
    });
    const hook = await invoke({
      rawPath: '/hooks/okta',
      method: 'POST',
      headers: { authorization: oktaHookSecret },
      body: '{}',
    });

    // Assess
    expect([scim.statusCode, hook.statusCode]).toEqual([503, 503]);
    expect(JSON.parse(scim.body ?? '{}')).toMatchObject({ status: '503' });
  });

  it('answers an Okta delivery 204 once queued, and 503 when the queue refuses it', async () => {
    // Prepare
    const { invoke, producer } = setup();
    const delivery = JSON.stringify(
      oktaDelivery([oktaEvent('okta-hook-membership-add.json', { published: new Date().toISOString() })]),
    );

    // Act
    const queued = await invoke({
      rawPath: '/hooks/okta',
      method: 'POST',
      headers: { authorization: oktaHookSecret },
      body: delivery,
    });
    producer.failNext(1);
    const refused = await invoke({
      rawPath: '/hooks/okta',
      method: 'POST',
      headers: { authorization: oktaHookSecret },
      body: delivery,
    });

    // Assess
    expect(queued.statusCode).toBe(204);
    expect(queued.body).toBeUndefined();
    expect(refused.statusCode).toBe(503);
    expect(producer.summary()).toEqual(['membership.added test data']);
  });
});
