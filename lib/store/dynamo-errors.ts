/**
 * What a failed DynamoDB call means, as a `StoreError` a person can act on. Weather (throttling,
 * 5xx, network, a deadline) is retryable: never act on a read that failed. A request DynamoDB
 * refuses as invalid fails the same way every time, so it is permanent: an item over 400 KB
 * (`STORE_ITEM_TOO_LARGE`), any other `ValidationException` (`STORE_REQUEST_INVALID`, a bug).
 */
import { AwsDeadlineError } from '../aws.ts';
import { ErrorCodes, StoreError } from '../errors.ts';

const nameOf = (error: unknown): string | undefined =>
  typeof error === 'object' && error !== null && 'name' in error ? String(error.name) : undefined;

const describe = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

/** DynamoDB's words for an item over the limit (PutItem, UpdateItem, BatchWriteItem, transactions). */
const itemTooLarge = /item size.*exceed|exceed.*item size|item size to update/i;

interface FailureContext {
  /** What was being done, e.g. `membership store write for user 0123…`. */
  what: string;
  tableName: string;
  /** Bytes of the item written, when known (for the size reason). */
  itemBytes?: number;
}

/**
 * @example throw storeFailure(error, { what: `membership store read for user ${userId}`, tableName });
 */
const storeFailure = (error: unknown, context: FailureContext): StoreError => {
  const { what, tableName } = context;
  if (error instanceof AwsDeadlineError)
    return new StoreError(`${what} did not finish in time: ${error.message}`, {
      code: ErrorCodes.deadline,
      cause: error,
    });
  const name = nameOf(error);
  if (name === 'ValidationException' && itemTooLarge.test(String((error as Error).message)))
    return new StoreError(
      `${what} was refused: the item${context.itemBytes === undefined ? '' : ` (${context.itemBytes} bytes by our count)`} ` +
        `is over DynamoDB's 400 KB item limit (${describe(error)})`,
      { code: ErrorCodes.storeItemTooLarge, retryable: false, cause: error },
    );
  if (name === 'ValidationException')
    return new StoreError(`${what} was refused as invalid, a bug to report: ${describe(error)}`, {
      code: ErrorCodes.storeRequestInvalid,
      retryable: false,
      cause: error,
    });
  if (name === 'ResourceNotFoundException')
    return new StoreError(
      `${what} failed: table ${tableName} does not exist in this account and region (check TABLE_NAME): ${describe(error)}`,
      { cause: error },
    );
  return new StoreError(`${what} failed: ${describe(error)}`, { cause: error });
};

export type { FailureContext };
export { storeFailure };
