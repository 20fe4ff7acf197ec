/**
 * The intake on 127.0.0.1 for the local stack: a node:http server that turns each request into the
 * API Gateway HTTP API (payload v2) event the real handler receives in AWS, and the handler's
 * answer back into HTTP. It does what API Gateway does in front of the function: the `/events`
 * route is checked like the IAM authorizer (SigV4 with the local credentials; 403 before the
 * handler otherwise), and a body larger than API Gateway accepts is refused with 413.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Context } from 'aws-lambda';
import type { IntakeEvent, IntakeResult } from '../intake/handler.ts';
import { createLambdaContext } from './lambda-context.ts';
import { type Credentials, verifySigV4 } from './sigv4.ts';

type IntakeHandler = (event: IntakeEvent, context: Context) => Promise<IntakeResult>;

interface IntakeServerOptions {
  handler: IntakeHandler;
  /** What the IAM authorizer accepts on `/events`. */
  credentials: Credentials;
  region: string;
  accountId?: string;
  /** Function timeout given to the handler's context (default 15 s). */
  functionTimeoutMs?: number;
}

interface IntakeServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  close(): Promise<void>;
}

/** API Gateway HTTP APIs refuse larger payloads before any function runs. */
const gatewayMaxBodyBytes = 10 * 1024 * 1024;

const readBody = (req: IncomingMessage): Promise<Buffer | undefined> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= gatewayMaxBodyBytes) chunks.push(chunk);
    });
    req.on('end', () => resolve(size <= gatewayMaxBodyBytes ? Buffer.concat(chunks) : undefined));
    req.on('error', reject);
  });

/** Headers as API Gateway passes them: lower-cased names, repeated values joined by commas. */
const headersOf = (req: IncomingMessage): Record<string, string> => {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers))
    if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(',') : value;
  return headers;
};

const isText = (contentType: string | undefined): boolean =>
  contentType === undefined || /json|text|x-www-form-urlencoded/i.test(contentType);

/**
 * @example
 * const server = await startIntakeServer({ handler, credentials: localCredentials, region: 'us-east-1' });
 * // POST ${server.url}/scim/v2/Users …
 * await server.close();
 */
const startIntakeServer = async (options: IntakeServerOptions): Promise<IntakeServer> => {
  const accountId = options.accountId ?? '000000000000';
  let url = '';

  const serve = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const send = (result: IntakeResult): void => {
      if (res.headersSent || res.destroyed) return;
      const body =
        result.body === undefined
          ? undefined
          : Buffer.from(result.body, result.isBase64Encoded ? 'base64' : 'utf8');
      res.statusCode = result.statusCode;
      for (const [name, value] of Object.entries(result.headers ?? {})) res.setHeader(name, String(value));
      if (body !== undefined) res.setHeader('content-length', body.length);
      res.end(body);
    };
    const body = await readBody(req);
    if (body === undefined) return send({ statusCode: 413, body: '{"message":"Request Entity Too Large"}' });
    const target = new URL(req.url ?? '/', url);
    const headers = headersOf(req);
    const method = (req.method ?? 'GET').toUpperCase();
    const text = body.toString('utf8');
    let authorizer: IntakeEvent['requestContext']['authorizer'];
    if (target.pathname === '/events') {
      const signed = await verifySigV4(target, method, headers, text, options.credentials, options.region);
      if (!signed) return send({ statusCode: 403, body: '{"message":"Forbidden"}' });
      authorizer = {
        iam: { accountId, userArn: `arn:aws:iam::${accountId}:user/${options.credentials.accessKeyId}` },
      };
    }
    const now = Date.now();
    const asText = isText(headers['content-type']);
    const event = {
      version: '2.0',
      routeKey: '$default',
      rawPath: target.pathname,
      rawQueryString: target.search.slice(1),
      headers: { ...headers, 'x-forwarded-proto': 'http' },
      requestContext: {
        accountId,
        apiId: 'local',
        domainName: target.host,
        domainPrefix: '127',
        http: {
          method,
          path: target.pathname,
          protocol: `HTTP/${req.httpVersion}`,
          sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
          userAgent: headers['user-agent'] ?? '',
        },
        requestId: randomUUID(),
        routeKey: '$default',
        stage: '$default',
        time: new Date(now).toISOString(),
        timeEpoch: now,
        ...(authorizer === undefined ? {} : { authorizer }),
      },
      ...(body.length === 0 ? {} : { body: asText ? text : body.toString('base64') }),
      isBase64Encoded: body.length > 0 && !asText,
    } as unknown as IntakeEvent;
    send(await options.handler(event, createLambdaContext('intake', options.functionTimeoutMs ?? 15_000)));
  };

  const server: Server = createServer((req, res) => {
    serve(req, res).catch(() => {
      // A bug must show as a 5xx, never as a hung client.
      if (!res.headersSent) {
        res.statusCode = 502;
        res.end('{"message":"Internal Server Error"}');
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
};

export type { IntakeHandler, IntakeServer, IntakeServerOptions };
export { startIntakeServer };
