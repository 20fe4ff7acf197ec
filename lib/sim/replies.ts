/**
 * What a simulator handler answers, and the three error body shapes of swr-api.md. Different
 * kinds of error deliberately use different shapes so that a client must parse all three.
 */

/** 1: SWR `{errors:[…], error_code, error_msg}`; 2: IAM / API gateway `{error_code, error_msg}`; 3: bare array. */
const ErrorShapes = { swr: 1, flat: 2, bare: 3 } as const;

type ErrorShape = (typeof ErrorShapes)[keyof typeof ErrorShapes];

interface Reply {
  status: number;
  /** Serialised as JSON when present; absent means an empty body. */
  body?: unknown;
  /** Sent as is instead of `body` (pages, cut-off bodies): what a faulty answer looks like. */
  raw?: { text: string; contentType: string };
  headers?: Record<string, string>;
}

/** A failed call: the status, the documented code and the shape its body takes. */
interface Failure {
  status: number;
  code: string;
  message: string;
  shape: ErrorShape;
  headers?: Record<string, string>;
}

const failure = (
  status: number,
  code: string,
  message: string,
  shape: ErrorShape = ErrorShapes.swr,
  headers?: Record<string, string>,
): Failure =>
  headers === undefined ? { status, code, message, shape } : { status, code, message, shape, headers };

const isFailure = (value: unknown): value is Failure =>
  typeof value === 'object' && value !== null && 'code' in value && 'shape' in value;

const errorBody = (f: Failure, requestId: string): unknown => {
  switch (f.shape) {
    case ErrorShapes.swr:
      return {
        errors: [{ errorCode: f.code, errorMessage: f.message }],
        error_code: f.code,
        error_msg: f.message,
      };
    case ErrorShapes.flat:
      return f.code.startsWith('APIGW.')
        ? { error_code: f.code, error_msg: f.message, request_id: requestId }
        : { error_code: f.code, error_msg: f.message };
    case ErrorShapes.bare:
      return [{ errorCode: f.code, errorMessage: f.message }];
  }
};

/** The reply that carries a failure in its shape. */
const failureReply = (f: Failure, requestId: string): Reply =>
  f.headers === undefined
    ? { status: f.status, body: errorBody(f, requestId) }
    : { status: f.status, body: errorBody(f, requestId), headers: f.headers };

export type { ErrorShape, Failure, Reply };
export { ErrorShapes, failure, failureReply, isFailure };
