/**
 * Loopback queue URLs for processes outside the local stack (`serverless invoke local`, the CLI).
 *
 * fauxqs names its queues `http://sqs.us-east-1.localhost:<port>/…` and finds a queue by that exact
 * URL. An AWS SDK client configured only through the environment (AWS_ENDPOINT_URL_SQS) sends each
 * request to the host of the queue URL it is given, and `sqs.us-east-1.localhost` does not resolve
 * on most machines (`getaddrinfo ENOTFOUND`). This gateway listens on 127.0.0.1 and forwards to
 * fauxqs, rewriting queue URLs in request and answer bodies between the two spellings, so the
 * environment can name every queue by a 127.0.0.1 URL that works from anywhere on the machine.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

interface SqsGateway {
  /** `http://127.0.0.1:<port>`: the SQS endpoint for other processes. */
  endpoint: string;
  /** A fauxqs queue URL as other processes must spell it. */
  loopbackUrl(queueUrl: string): string;
  close(): Promise<void>;
}

const readAll = (stream: IncomingMessage): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });

/** Replaces an origin in JSON (`http://h/`) and form-encoded (`http%3A%2F%2Fh%2F`) bodies. */
const swapOrigin = (text: string, from: string, to: string): string =>
  text
    .replaceAll(`${from}/`, `${to}/`)
    .replaceAll(encodeURIComponent(`${from}/`), encodeURIComponent(`${to}/`))
    .replaceAll(JSON.stringify(`${from}/`).slice(1, -1), JSON.stringify(`${to}/`).slice(1, -1));

/**
 * @example
 * const gateway = await startSqsGateway(localSqs.endpoint, localSqs.queues.accessChanges.url);
 * env.ACCESS_CHANGES_QUEUE_URL = gateway.loopbackUrl(localSqs.queues.accessChanges.url);
 */
const startSqsGateway = async (fauxqsEndpoint: string, anyQueueUrl: string): Promise<SqsGateway> => {
  const upstream = new URL(fauxqsEndpoint);
  const queueOrigin = new URL(anyQueueUrl).origin;
  let loopbackOrigin = '';

  const server: Server = createServer((req, res) => {
    readAll(req)
      .then((body) => {
        const forwarded = Buffer.from(swapOrigin(body.toString('utf8'), loopbackOrigin, queueOrigin));
        const headers = { ...req.headers, host: upstream.host, 'content-length': String(forwarded.length) };
        const outgoing = httpRequest(
          { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers },
          (answer) => {
            readAll(answer)
              .then((answerBody) => {
                const back = Buffer.from(
                  swapOrigin(answerBody.toString('utf8'), queueOrigin, loopbackOrigin),
                );
                res.writeHead(answer.statusCode ?? 502, {
                  ...answer.headers,
                  'content-length': String(back.length),
                });
                res.end(back);
              })
              .catch(() => res.destroy());
          },
        );
        outgoing.on('error', () => {
          if (!res.headersSent) res.writeHead(502);
          res.end();
        });
        outgoing.end(forwarded);
      })
      .catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  loopbackOrigin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    endpoint: loopbackOrigin,
    loopbackUrl: (queueUrl) => `${loopbackOrigin}${new URL(queueUrl).pathname}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
};

export type { SqsGateway };
export { startSqsGateway };
