/**
 * Per-message state of one batch, in delivery order: every message is pending until a stage
 * fails it; what is still pending at the end was applied.
 */
import { SyncError } from '../errors.ts';
import type { PipelineRecord } from './types.ts';

type MessageState = { kind: 'pending' } | { kind: 'failed'; error: SyncError };

class BatchState {
  readonly #states = new Map<string, MessageState>();

  constructor(readonly records: readonly PipelineRecord[]) {
    for (const record of records) this.#states.set(record.messageId, { kind: 'pending' });
  }

  /** Records a failure; a permanent one is kept over a later retryable one (retrying cannot help). */
  fail(messageId: string, error: SyncError): void {
    const state = this.#states.get(messageId);
    if (state === undefined) return;
    if (state.kind === 'failed' && !state.error.retryable) return;
    this.#states.set(messageId, { kind: 'failed', error });
  }

  /** Marks messages behind a retried one of their FIFO group: they wait for it. */
  holdBehindRetries(): void {
    const held = new Map<string, SyncError>();
    for (const record of this.records) {
      const state = this.#states.get(record.messageId);
      const blocker = record.groupId === undefined ? undefined : held.get(record.groupId);
      if (state?.kind === 'pending' && blocker !== undefined)
        this.fail(
          record.messageId,
          new SyncError(`waits for an earlier message of its group (${blocker.code})`, {
            code: blocker.code,
            retryable: true,
          }),
        );
      const now = this.#states.get(record.messageId);
      if (
        now?.kind === 'failed' &&
        now.error.retryable &&
        record.groupId !== undefined &&
        !held.has(record.groupId)
      )
        held.set(record.groupId, now.error);
    }
  }

  pending(): PipelineRecord[] {
    return this.records.filter((record) => this.#states.get(record.messageId)?.kind === 'pending');
  }

  isPending(messageId: string): boolean {
    return this.#states.get(messageId)?.kind === 'pending';
  }

  outcome(messageId: string): 'applied' | 'permanent' | 'retry' {
    const state = this.#states.get(messageId);
    if (state === undefined || state.kind === 'pending') return 'applied';
    return state.error.retryable ? 'retry' : 'permanent';
  }

  errorOf(messageId: string): SyncError | undefined {
    const state = this.#states.get(messageId);
    return state?.kind === 'failed' ? state.error : undefined;
  }
}

export { BatchState };
