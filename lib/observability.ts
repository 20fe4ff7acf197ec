/**
 * Logging, metrics and the audit trail behind two small ports, so the pipeline can be tested with
 * in-memory fakes and runs on Powertools (structured JSON logs, EMF metrics) in Lambda.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { AuthLevel, Target } from './domain.ts';
import { permissionOfLevel, targetKey } from './domain.ts';

type LogAttributes = Record<string, unknown>;

interface Log {
  debug(message: string, attributes?: LogAttributes): void;
  info(message: string, attributes?: LogAttributes): void;
  warn(message: string, attributes?: LogAttributes): void;
  error(message: string, attributes?: LogAttributes): void;
}

/** Metric names: one place, so dashboards and alarms can rely on them. */
const MetricNames = {
  messagesIn: 'MessagesIn',
  messagesApplied: 'MessagesApplied',
  messagesRetried: 'MessagesRetried',
  deadLettered: 'DeadLettered',
  grants: 'Grants',
  changes: 'Changes',
  revokes: 'Revokes',
  apiCalls: 'ApiCalls',
  apiRetries: 'ApiRetries',
  replans: 'Replans',
  staleEvents: 'StaleEventsIgnored',
  deferredEvents: 'EventsDeferred',
  unknownTeams: 'UnknownTeams',
  offboardingLatency: 'OffboardingLatency',
  massRevokeBlocked: 'MassRevokeBlocked',
  intakeRequests: 'IntakeRequests',
  intakeEventsSent: 'IntakeEventsSent',
  intakeEnqueueFailures: 'IntakeEnqueueFailures',
  intakeUnmappedUsers: 'IntakeUnmappedUsers',
  intakeUnknownGroups: 'IntakeUnknownGroups',
  intakeRejected: 'IntakeRejected',
} as const;

type MetricName = (typeof MetricNames)[keyof typeof MetricNames];

interface MetricsSink {
  count(name: MetricName, value?: number): void;
  milliseconds(name: MetricName, value: number): void;
  /** Writes what was collected (EMF); called once per invocation. */
  flush(): void;
}

/** One applied change: who, where, from which level to which, because of which events. */
interface AuditRecord {
  at: string;
  actor: string;
  eventIds: string[];
  sources: string[];
  userId: string;
  userName: string;
  target: Target;
  before: AuthLevel | undefined;
  after: AuthLevel | undefined;
  dryRun: boolean;
}

/** The shape of an audit record in the log: levels by name, the target as a key. */
const auditLogAttributes = (record: AuditRecord): LogAttributes => ({
  audit: true,
  at: record.at,
  actor: record.actor,
  eventIds: record.eventIds,
  sources: record.sources,
  userId: record.userId,
  userName: record.userName,
  target: targetKey(record.target),
  targetKind: record.target.kind,
  before: record.before === undefined ? 'none' : permissionOfLevel(record.before),
  after: record.after === undefined ? 'none' : permissionOfLevel(record.after),
  dryRun: record.dryRun,
});

const createPowertoolsLog = (serviceName: string): Log & { logger: Logger } => {
  const logger = new Logger({ serviceName });
  return {
    logger,
    debug: (message, attributes = {}) => logger.debug(message, attributes),
    info: (message, attributes = {}) => logger.info(message, attributes),
    warn: (message, attributes = {}) => logger.warn(message, attributes),
    error: (message, attributes = {}) => logger.error(message, attributes),
  };
};

const createPowertoolsMetrics = (serviceName: string, namespace = 'SwrAccessSync'): MetricsSink => {
  const metrics = new Metrics({ namespace, serviceName });
  return {
    count: (name, value = 1) => metrics.addMetric(name, MetricUnit.Count, value),
    milliseconds: (name, value) => metrics.addMetric(name, MetricUnit.Milliseconds, value),
    flush: () => metrics.publishStoredMetrics(),
  };
};

/** Collects everything in memory: tests, the CLI and the local stack read it back. */
const createMemoryTelemetry = () => {
  const lines: Array<{ level: string; message: string } & LogAttributes> = [];
  const counters = new Map<string, number>();
  const timings = new Map<string, number[]>();
  const log: Log = {
    debug: (message, attributes) => lines.push({ level: 'DEBUG', message, ...attributes }),
    info: (message, attributes) => lines.push({ level: 'INFO', message, ...attributes }),
    warn: (message, attributes) => lines.push({ level: 'WARN', message, ...attributes }),
    error: (message, attributes) => lines.push({ level: 'ERROR', message, ...attributes }),
  };
  const metrics: MetricsSink = {
    count: (name, value = 1) => counters.set(name, (counters.get(name) ?? 0) + value),
    milliseconds: (name, value) => timings.set(name, [...(timings.get(name) ?? []), value]),
    flush: () => undefined,
  };
  return { log, metrics, lines, counters, timings };
};

/** A log that drops everything (benchmarks). */
const silentLog: Log = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

export type { AuditRecord, Log, LogAttributes, MetricName, MetricsSink };
export {
  auditLogAttributes,
  createMemoryTelemetry,
  createPowertoolsLog,
  createPowertoolsMetrics,
  MetricNames,
  silentLog,
};
