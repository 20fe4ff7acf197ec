/**
 * The simulator's own errors. They extend nothing from the product (`lib/errors.ts`): the
 * simulator stands in for Huawei Cloud and must not share the client's vocabulary.
 */

/** Anything the simulator refuses to do for its caller (a test, the CLI, the local stack). */
class SimulatorError extends Error {
  readonly code: string;

  constructor(message: string, code: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SimulatorError';
    this.code = code;
  }
}

/** A test or the CLI used the simulator wrongly (unknown target, the service account as a grantee). */
class SimulatorUsageError extends SimulatorError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, 'SIM_USAGE', options);
    this.name = 'SimulatorUsageError';
  }
}

/** A seed, a faults file or command-line arguments that cannot be used; lists every problem. */
class SimulatorConfigError extends SimulatorError {
  readonly problems: string[];

  constructor(message: string, problems: string[] = [], options?: ErrorOptions) {
    super(
      problems.length > 0 ? `${message}\n  - ${problems.join('\n  - ')}` : message,
      'SIM_CONFIG',
      options,
    );
    this.name = 'SimulatorConfigError';
    this.problems = problems;
  }
}

export { SimulatorConfigError, SimulatorError, SimulatorUsageError };
