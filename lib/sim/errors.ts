import { ErrorCodes, SyncError } from '../errors.ts';

/** A test or the CLI used the simulator wrongly (unknown target, the service account as a grantee). */
class SimulatorUsageError extends SyncError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, { ...options, code: ErrorCodes.config, retryable: false });
    this.name = 'SimulatorUsageError';
  }
}

export { SimulatorUsageError };
