/**
 * DynamoDB for the local stack and tests: dynalite in-process (in-memory LevelDB) on 127.0.0.1.
 * Tables are created by the store's own `ensureTable`, as in production.
 */
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { localCredentials, localRegion } from './sqs.ts';

interface DynaliteOptions {
  /** How long a new table stays CREATING; 0 makes it ACTIVE at once. */
  createTableMs?: number;
  deleteTableMs?: number;
  updateTableMs?: number;
}

// dynalite is CommonJS without type declarations; this is the one function it exports.
const dynalite = createRequire(import.meta.url)('dynalite') as (options?: DynaliteOptions) => Server;

interface LocalDynamo {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  client: DynamoDBClient;
  /** Destroys the client and closes the server and its in-memory store. */
  stop(): Promise<void>;
}

/**
 * A DynamoDB client for a local endpoint: region us-east-1, fake static credentials.
 *
 * @example
 * const dynamo = createDynamoClient('http://127.0.0.1:4567');
 */
const createDynamoClient = (endpoint: string): DynamoDBClient =>
  new DynamoDBClient({ region: localRegion, endpoint, credentials: localCredentials });

const listen = (server: Server): Promise<number> =>
  new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error('dynalite is not listening on a TCP port'));
        return;
      }
      resolve(address.port);
    });
  });

const close = (server: Server): Promise<void> =>
  new Promise((resolve, reject) => {
    // Idle keep-alive sockets would otherwise hold close() open.
    server.closeAllConnections();
    server.close((error) => (error ? reject(error) : resolve()));
  });

/**
 * Starts dynalite on 127.0.0.1 (a free port), tables ACTIVE as soon as created.
 *
 * @example
 * const dynamo = await startLocalDynamo();
 * await ensureTable(dynamo.client, 'memberships');
 * await dynamo.stop();
 */
const startLocalDynamo = async (): Promise<LocalDynamo> => {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const port = await listen(server);
  const endpoint = `http://127.0.0.1:${port}`;
  const client = createDynamoClient(endpoint);
  return {
    endpoint,
    client,
    stop: async () => {
      client.destroy();
      await close(server);
    },
  };
};

export type { LocalDynamo };
export { createDynamoClient, startLocalDynamo };
