/**
 * The intake function behind the HTTP API: `/scim/v2/*` (SCIM 2.0, bearer token), `/hooks/okta`
 * (Okta Event Hooks, shared secret in Authorization) and `/events` (our own events, IAM SigV4
 * checked by API Gateway). One API Gateway HTTP API (payload v2) event in, one answer out; the
 * decisions live in the modules it calls.
 */
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { isRetryable } from '../errors.ts';
import { flushMetrics } from '../middleware.ts';
import { type Log, MetricNames, type MetricsSink } from '../observability.ts';
import { EnqueueError, type EventProducer, validateEvents } from '../producer.ts';
import { redactSecrets } from '../redact.ts';
import { type IntakeSecrets, sameSecret } from './config.ts';
import { type OktaHook, readDelivery } from './okta.ts';
import { scimErrorBody } from './scim/protocol.ts';
import type { ScimService } from './scim/service.ts';

/** The parts of an HTTP API event the intake reads; `authorizer.iam` is set by the IAM authorizer. */
type IntakeEvent = APIGatewayProxyEventV2 & {
  requestContext: APIGatewayProxyEventV2['requestContext'] & {
    authorizer?: { iam?: { userArn?: string; accountId?: string } };
  };
};

type IntakeResult = APIGatewayProxyStructuredResultV2 & { statusCode: number };

interface IntakeServices {
  scim: ScimService;
  okta: OktaHook;
  producer: EventProducer;
  secrets: IntakeSecrets;
}

interface IntakeRuntime {
  ready(): Promise<IntakeServices>;
  log: Log;
  metrics: MetricsSink;
}

/** Larger bodies are not what an identity provider sends; 413 before anything reads them. */
const maxBodyBytes = 1024 * 1024;
/** Okta gives up after 3 s; keep room for the answer to travel back. */
const oktaBudgetMs = 2_500;
const maxEventsPerRequest = 1_000;

const scimType = 'application/scim+json';
const jsonType = 'application/json';

const answer = (
  statusCode: number,
  body?: unknown,
  contentType = jsonType,
  headers: Record<string, string> = {},
): IntakeResult => ({
  statusCode,
  headers: { ...(body === undefined ? {} : { 'content-type': contentType }), ...headers },
  ...(body === undefined ? {} : { body: JSON.stringify(body) }),
});

const headerOf = (event: IntakeEvent, name: string): string | undefined => {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(event.headers ?? {}))
    if (key.toLowerCase() === wanted && value !== undefined) return value;
  return undefined;
};

/** The body as text, or `undefined` when it is larger than we read. */
const bodyOf = (event: IntakeEvent): string | undefined => {
  const raw = event.body ?? '';
  const buffer = event.isBase64Encoded ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8');
  return buffer.length > maxBodyBytes ? undefined : buffer.toString('utf8');
};

const parseJson = (text: string): { ok: true; value: unknown } | { ok: false } => {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
};

/** First value of each query parameter, decoded (`+` is a space, as Entra sends filters). */
const queryOf = (event: IntakeEvent): Record<string, string> => {
  const query: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(event.rawQueryString ?? ''))
    if (!Object.hasOwn(query, key)) query[key] = value;
  return query;
};

const describe = (error: unknown): string =>
  redactSecrets(error instanceof Error ? `${error.name}: ${error.message}` : String(error));

// ---- SCIM --------------------------------------------------------------------------------------

const scimPrefix = '/scim/v2';

const handleScim = async (event: IntakeEvent, services: IntakeServices): Promise<IntakeResult> => {
  // `Bearer <token>`; the bare token too, as some Okta connector set-ups send it.
  const authorization = headerOf(event, 'authorization')?.trim();
  const token = /^Bearer\s+(.+)$/i.exec(authorization ?? '')?.[1]?.trim() ?? authorization;
  if (!sameSecret(token, services.secrets.scimToken))
    return answer(401, scimErrorBody(401), scimType, { 'www-authenticate': 'Bearer realm="scim"' });
  const body = bodyOf(event);
  if (body === undefined)
    return answer(
      413,
      scimErrorBody(413, undefined, `the request body exceeds ${maxBodyBytes} bytes`),
      scimType,
    );
  const at = event.rawPath.indexOf(scimPrefix);
  const rest = event.rawPath.slice(at + scimPrefix.length);
  let segments: string[];
  try {
    segments = rest
      .split('/')
      .filter((segment) => segment !== '')
      .map((segment) => decodeURIComponent(segment));
  } catch {
    return answer(400, scimErrorBody(400, 'invalidPath', 'the path is not valid URL encoding'), scimType);
  }
  const proto = headerOf(event, 'x-forwarded-proto') ?? 'https';
  const reply = await services.scim.handle({
    method: event.requestContext.http.method,
    segments,
    query: queryOf(event),
    body,
    baseUrl: `${proto}://${event.requestContext.domainName}${event.rawPath.slice(0, at)}${scimPrefix}`,
  });
  return answer(reply.status, reply.body, scimType, reply.headers);
};

// ---- Okta Event Hooks --------------------------------------------------------------------------

const handleOkta = async (
  event: IntakeEvent,
  services: IntakeServices,
  runtime: IntakeRuntime,
  startedAt: number,
): Promise<IntakeResult> => {
  if (!sameSecret(headerOf(event, 'authorization'), services.secrets.oktaHookSecret)) return answer(401);
  const method = event.requestContext.http.method.toUpperCase();
  if (method === 'GET') {
    // The one-time verification: the challenge comes in a header, goes back in JSON.
    const challenge = headerOf(event, 'x-okta-verification-challenge');
    if (challenge === undefined) return answer(400, { message: 'X-Okta-Verification-Challenge is missing' });
    return answer(200, { verification: challenge });
  }
  if (method !== 'POST') return answer(405, { message: `${method} is not supported` });
  const body = bodyOf(event);
  if (body === undefined) return answer(413, { message: `the request body exceeds ${maxBodyBytes} bytes` });
  const parsed = parseJson(body);
  const events = parsed.ok ? readDelivery(parsed.value) : undefined;
  // 4xx: Okta does not retry what cannot succeed.
  if (events === undefined) return answer(400, { message: 'not an Okta event hook delivery (data.events)' });
  const deadline = startedAt + oktaBudgetMs;
  try {
    const outcomes = await services.okta.translate(events, { deadline });
    services.okta.report(outcomes);
    const outgoing = outcomes.flatMap((outcome) => (outcome.kind === 'events' ? outcome.events : []));
    if (outgoing.length > 0) {
      await services.producer.send(outgoing, {
        signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())),
      });
      runtime.metrics.count(MetricNames.intakeEventsSent, outgoing.length);
    }
    return answer(204);
  } catch (error) {
    // 5xx: Okta retries once; the events carry their uuid, so a copy changes nothing.
    runtime.metrics.count(MetricNames.intakeEnqueueFailures);
    runtime.log.error('intake: Okta delivery not queued; answering 5xx so that Okta retries', {
      source: 'okta-hook',
      events: events.length,
      reason: describe(error),
    });
    return answer(503, { message: 'the events could not be queued; retry' });
  }
};

// ---- our own events ----------------------------------------------------------------------------

const handleEvents = async (
  event: IntakeEvent,
  services: IntakeServices,
  runtime: IntakeRuntime,
): Promise<IntakeResult> => {
  // API Gateway's IAM authorizer sets this; without it the route was deployed without one.
  if (event.requestContext.authorizer?.iam === undefined)
    return answer(403, { message: 'this route requires IAM (SigV4) authorization' });
  if (event.requestContext.http.method.toUpperCase() !== 'POST') return answer(405, { message: 'POST only' });
  const body = bodyOf(event);
  if (body === undefined) return answer(413, { message: `the request body exceeds ${maxBodyBytes} bytes` });
  const parsed = parseJson(body);
  if (!parsed.ok || !Array.isArray(parsed.value))
    return answer(400, { message: 'the body must be a JSON array of events' });
  if (parsed.value.length === 0 || parsed.value.length > maxEventsPerRequest)
    return answer(400, { message: `send 1 to ${maxEventsPerRequest} events per request` });
  const checked = validateEvents(parsed.value);
  if (!checked.ok)
    return answer(400, { message: 'some events are not valid; none was queued', problems: checked.problems });
  try {
    const sent = await services.producer.send(checked.events.map((item) => ({ event: item })));
    runtime.metrics.count(MetricNames.intakeEventsSent, sent.sent);
    return answer(202, {
      accepted: sent.sent,
      accessChanges: sent.accessChanges,
      offboarding: sent.offboarding,
    });
  } catch (error) {
    runtime.metrics.count(MetricNames.intakeEnqueueFailures);
    runtime.log.error('intake: events not queued', { source: 'events', reason: describe(error) });
    const failed = error instanceof EnqueueError ? error.failed.map((entry) => entry.index) : undefined;
    // Events before the failed ones may be queued: resending all is safe (same ids, same facts).
    return answer(isRetryable(error) ? 503 : 500, {
      message: 'some events could not be queued; send them again',
      ...(failed === undefined ? {} : { failed }),
    });
  }
};

// ---- the function ------------------------------------------------------------------------------

const routeOf = (path: string): 'scim' | 'okta' | 'events' | undefined => {
  if (path === '/hooks/okta') return 'okta';
  if (path === '/events') return 'events';
  if (path === scimPrefix || path.includes(`${scimPrefix}/`) || path.endsWith(scimPrefix)) return 'scim';
  return undefined;
};

/**
 * @example export const handler = middy().handler((event, context) => handleIntakeEvent(event, context, runtime));
 */
const handleIntakeEvent = async (
  event: IntakeEvent,
  _context: Context,
  runtime: IntakeRuntime,
): Promise<IntakeResult> => {
  const startedAt = Date.now();
  const route = routeOf(event.rawPath ?? '');
  runtime.metrics.count(MetricNames.intakeRequests);
  let result: IntakeResult;
  try {
    if (route === undefined) result = answer(404, { message: 'not found' });
    else {
      const services = await runtime.ready();
      result =
        route === 'scim'
          ? await handleScim(event, services)
          : route === 'okta'
            ? await handleOkta(event, services, runtime, startedAt)
            : await handleEvents(event, services, runtime);
    }
  } catch (error) {
    runtime.log.error('intake: request failed', { route, reason: describe(error) });
    result =
      route === 'scim'
        ? answer(503, scimErrorBody(503, undefined, 'temporarily unavailable; retry'), scimType)
        : answer(503, { message: 'temporarily unavailable; retry' });
  }
  if (result.statusCode === 401 || result.statusCode === 403 || result.statusCode === 413)
    runtime.metrics.count(MetricNames.intakeRejected);
  runtime.log.info('intake request', {
    route: route ?? 'none',
    method: event.requestContext?.http?.method,
    status: result.statusCode,
    ms: Date.now() - startedAt,
  });
  return result;
};

/**
 * @example export const handler = createIntakeHandler(createIntakeRuntime({ functionName: 'intake' }));
 */
const createIntakeHandler = (runtime: IntakeRuntime) =>
  middy<IntakeEvent, IntakeResult, Error, Context>({ timeoutEarlyInMillis: 0 })
    .use(flushMetrics({ metrics: runtime.metrics }))
    .handler((event, context) => handleIntakeEvent(event, context, runtime));

export type { IntakeEvent, IntakeResult, IntakeRuntime, IntakeServices };
export { createIntakeHandler, handleIntakeEvent, maxBodyBytes };
