/**
 * Every failure the service raises is a SyncError: it says whether retrying can help, carries
 * a code a person can look up (an SWR code such as `SVCSTG.SWR.4040010`, or one of ours such
 * as `INVALID_NAME`) and, where one is involved, the target that failed. These three fields
 * become the DLQ attributes, so messages must never contain secrets.
 */

/** Codes of our own; SWR and IAM codes pass through unchanged. */
const ErrorCodes = {
  invalidJson: 'INVALID_JSON',
  schema: 'SCHEMA',
  invalidName: 'INVALID_NAME',
  unknownUser: 'UNKNOWN_USER',
  network: 'NETWORK',
  timeout: 'TIMEOUT',
  deadline: 'DEADLINE_EXCEEDED',
  http: 'HTTP_ERROR',
  auth: 'AUTH_FAILED',
  config: 'CONFIG',
  policy: 'POLICY',
  store: 'STORE_UNAVAILABLE',
  conflict: 'STORE_CONFLICT',
  /** A user's record would not fit in one DynamoDB item (400 KB), or DynamoDB said so. */
  storeItemTooLarge: 'STORE_ITEM_TOO_LARGE',
  /** DynamoDB refused the request as malformed (ValidationException): a bug, not weather. */
  storeRequestInvalid: 'STORE_REQUEST_INVALID',
  crash: 'HANDLER_CRASH',
  /** A write answered 2xx whose effect could not be read back. */
  unverified: 'WRITE_UNVERIFIED',
  /** A write answered 2xx that SWR does not show when read back. */
  notEffective: 'WRITE_NOT_EFFECTIVE',
  /** An offboarding whose sweep of the managed namespaces is not finished yet (progress is kept). */
  sweepInProgress: 'SWEEP_IN_PROGRESS',
  /** Another instance held the converge lease until this batch's deadline: its facts are recorded, it is converged on a later delivery. */
  leaseBusy: 'CONVERGE_LEASE_BUSY',
} as const;

type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

interface SyncErrorOptions extends ErrorOptions {
  code: string;
  retryable: boolean;
  /** `namespace` or `namespace/repository` the failure is about. */
  target?: string;
}

class SyncError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  readonly target: string | undefined;

  constructor(message: string, options: SyncErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SyncError';
    this.code = options.code;
    this.retryable = options.retryable;
    this.target = options.target;
  }
}

/** A name, user id or level that breaks the SWR rules: found before any URL is built. */
class InvalidNameError extends SyncError {
  readonly field: string;
  readonly rule: string;

  constructor(field: string, rule: string, options?: ErrorOptions) {
    super(`invalid ${field}: ${rule}`, { ...options, code: ErrorCodes.invalidName, retryable: false });
    this.name = 'InvalidNameError';
    this.field = field;
    this.rule = rule;
  }
}

/** A queue message whose body is not a valid event. */
class EventParseError extends SyncError {
  constructor(message: string, code: ErrorCode = ErrorCodes.schema, options?: ErrorOptions) {
    super(message, { ...options, code, retryable: false });
    this.name = 'EventParseError';
  }
}

/** A user that IAM does not know. */
class UnknownUserError extends SyncError {
  constructor(who: string, options?: ErrorOptions) {
    super(`IAM knows no user ${who}`, { ...options, code: ErrorCodes.unknownUser, retryable: false });
    this.name = 'UnknownUserError';
  }
}

/** A configuration or policy that cannot be used: raised at start-up, never per message. */
class ConfigError extends SyncError {
  readonly problems: string[];

  constructor(
    message: string,
    problems: string[],
    code: ErrorCode = ErrorCodes.config,
    options?: ErrorOptions,
  ) {
    super(problems.length > 0 ? `${message}\n  - ${problems.join('\n  - ')}` : message, {
      ...options,
      code,
      retryable: false,
    });
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/**
 * The membership or audit store could not be read or written. Retryable unless said otherwise
 * (never act on a failed read); a request DynamoDB refuses as invalid, or a record too large for
 * one item, is permanent: the same write fails the same way every time.
 */
class StoreError extends SyncError {
  constructor(message: string, options?: ErrorOptions & { code?: ErrorCode; retryable?: boolean }) {
    super(message, {
      ...options,
      code: options?.code ?? ErrorCodes.store,
      retryable: options?.retryable ?? true,
    });
    this.name = 'StoreError';
  }
}

/**
 * The converge lease (one access-changes instance converges at a time) could not be had before
 * the batch's deadline. Always retryable: the batch's facts are recorded, and whoever converges
 * next (this message's next delivery, or the holder's next batch of the same users) applies them.
 */
class LeaseBusyError extends SyncError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, { ...options, code: ErrorCodes.leaseBusy, retryable: true });
    this.name = 'LeaseBusyError';
  }
}

/** True for errors that retrying may cure; unknown errors count as retryable (lose nothing). */
const isRetryable = (error: unknown): boolean => (error instanceof SyncError ? error.retryable : true);

export type { ErrorCode, SyncErrorOptions };
export {
  ConfigError,
  ErrorCodes,
  EventParseError,
  InvalidNameError,
  isRetryable,
  LeaseBusyError,
  StoreError,
  SyncError,
  UnknownUserError,
};
