/** The shapes the pipeline's stages share: what comes in, what they need, what goes out. */
import type { SQSBatchResponse } from 'aws-lambda';
import type { BatchMessage } from '../core/batch-response.ts';
import type { KnownIdsByName } from '../core/events.ts';
import type { DeadLetterSender } from '../dlq.ts';
import type {
  CallOptions,
  LeasePort,
  MembershipStorePort,
  Policy,
  SwrPermissionsPort,
  UserDirectoryPort,
} from '../domain.ts';
import type { SyncError } from '../errors.ts';
import type { AuditRecord, Log, MetricsSink } from '../observability.ts';
import type { SweepProgressPort } from '../offboarding/progress.ts';
import type { SweepRequestPort } from '../offboarding/requests.ts';
import type { OffboardingProof } from '../offboarding/sweep.ts';

/** One queue message as the pipeline needs it (from a Lambda SQS record, or a CLI file line). */
interface PipelineRecord extends BatchMessage {
  body: string;
  /** ApproximateReceiveCount: becomes the `attempts` DLQ attribute. */
  receiveCount: number;
}

interface PipelineDeps {
  swr: SwrPermissionsPort;
  directory: UserDirectoryPort;
  store: MembershipStorePort;
  policy: Policy;
  /** Absent (CLI): permanent failures are reported and listed as failures, never dropped. */
  deadLetters: DeadLetterSender | undefined;
  log: Log;
  metrics: MetricsSink;
  /** Keeps audit records durably; a failure here is logged (the change itself is done). */
  audit?: (records: readonly AuditRecord[], options?: CallOptions) => Promise<void>;
  /**
   * Where the offboarding sweep keeps its progress between deliveries. Absent (CLI, tests): in
   * memory for this call only, so a sweep cut short starts again on the next delivery.
   */
  sweepProgress?: SweepProgressPort;
  /**
   * Where a leaver's sweep is requested once the known grants are revoked (the queue handlers: the
   * `offboarding-sweeps` queue, swept in large batches by `processSweepRequests`). Absent (CLI,
   * tests): the pipeline sweeps inline, in the same batch.
   */
  sweepRequests?: SweepRequestPort;
  /**
   * Held while a batch converges (stage 4), so that concurrent instances of one queue function
   * converge one after another, each from the newest records. Absent: no lease (the offboarding
   * queue, which must never wait for one; the CLI; reconcile does not use this pipeline).
   */
  convergeLease?: LeasePort;
  /** Leavers IAM no longer knows, by name: the users the audit trail recorded under it. */
  knownIdsByName?: KnownIdsByName;
  now: () => Date;
}

interface PipelineSettings {
  /** Who acts, for the audit trail: the function name or CLI command. */
  actor: string;
  concurrency: number;
  /** SWR calls in flight for the offboarding sweep (default: `concurrency`). */
  sweepConcurrency?: number;
  /** Targets per step of the offboarding sweep (default 100). */
  sweepPageSize?: number;
  dryRun: boolean;
  /** How often a user whose store record moved during the batch is planned again. */
  maxReplans?: number;
  /**
   * The queue's maxReceiveCount. A message still failing on that receive is dead-lettered here,
   * with its reason: SQS's own redrive would move it without one.
   */
  maxReceiveCount?: number;
  /** How far ahead an `effectiveAt` may be (default 400 days). */
  maxEffectiveAheadDays?: number;
  /**
   * How long after the processing deadline the dead letters and the audit may still be written
   * (default 2 s; it comes out of the safety margin kept before the Lambda timeout): a batch that
   * used all its time must still be able to dead-letter what cannot succeed.
   */
  answerGraceMs?: number;
}

interface MessageFailure {
  messageId: string;
  error: SyncError;
}

interface BatchReport {
  response: SQSBatchResponse;
  applied: string[];
  retried: MessageFailure[];
  deadLettered: MessageFailure[];
  /** Permanent failures that could not be dead-lettered (no DLQ, or the send failed). */
  undeliverable: MessageFailure[];
  changes: AuditRecord[];
  /** Offboardings proven in this batch: every target checked, the user holds nothing. */
  proofs: OffboardingProof[];
}

export type { BatchReport, MessageFailure, PipelineDeps, PipelineRecord, PipelineSettings };
