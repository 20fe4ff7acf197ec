/**
 * Logging, metrics and the audit trail behind two small ports, so the pipeline can be tested with
 * in-memory fakes and runs on Powertools (structured JSON logs, EMF metrics) in Lambda.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { AuthLevel, Target } from './domain.ts';
import { permissionOfLevel, targetKey } from './domain.ts';
import { redactSecrets } from './redact.ts';

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
  /** A throttling answer (429) cut an instance's adaptive SWR rate (SWR_ADAPTIVE_RATE). */
  rateCuts: 'RateCuts',
  /** An SWR request waited for the instance's own rate limit (SWR_MAX_RPS). */
  rateLimitWaits: 'RateLimitWaits',
  replans: 'Replans',
  /** How long an access-changes batch waited for the converge lease (ms; 0 when it was free). */
  convergeLeaseWait: 'ConvergeLeaseWait',
  staleEvents: 'StaleEventsIgnored',
  deferredEvents: 'EventsDeferred',
  unknownTeams: 'UnknownTeams',
  offboardingLatency: 'OffboardingLatency',
  massRevokeBlocked: 'MassRevokeBlocked',
  /** Per reconcile run: failed calls, failed re-reads and problems not tied to a target (0 when clean). */
  reconcileErrors: 'ReconcileErrors',
  /** Per reconcile run: policy targets that could not be read, so nothing was planned there. */
  reconcileSkippedTargets: 'ReconcileSkippedTargets',
  /** A new policy version (S3) was refused, or the object could not be read: the last good one stays. */
  policyReloadFailed: 'PolicyReloadFailed',
  /** A new policy version (S3) was loaded and is in use. */
  policyReloaded: 'PolicyReloaded',
  /** Intake (SCIM, Okta hooks, /events): requests, events queued, failures and what was not mapped. */
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
  /**
   * Why the change was made, in words a person reads in `audit` (e.g. the event types, "membership
   * expired", "not in policy", "tombstoned", "hand-made grant on an exclusive target", "drift").
   * Absent on records written before reasons were kept.
   */
  reason?: string;
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
  ...(record.reason === undefined ? {} : { reason: record.reason }),
});

/**
 * Every text attribute of a record passes through the secret redactor: error texts carry what
 * upstream services echoed, and a log line is the first place a leaked token would be read.
 */
const redactAttributes = (attributes: LogAttributes): LogAttributes => {
  const out: LogAttributes = {};
  for (const [key, value] of Object.entries(attributes))
    out[key] = typeof value === 'string' ? redactSecrets(value) : value;
  return out;
};

const createPowertoolsLog = (serviceName: string): Log & { logger: Logger } => {
  const logger = new Logger({ serviceName });
  return {
    logger,
    debug: (message, attributes = {}) => logger.debug(redactSecrets(message), redactAttributes(attributes)),
    info: (message, attributes = {}) => logger.info(redactSecrets(message), redactAttributes(attributes)),
    warn: (message, attributes = {}) => logger.warn(redactSecrets(message), redactAttributes(attributes)),
    error: (message, attributes = {}) => logger.error(redactSecrets(message), redactAttributes(attributes)),
  };
};

/**
 * The dimension names every metric of ours carries, in the order Powertools writes them (EMF
 * `Dimensions`): `service` (the service name) and `function`. Alarms must name exactly these: a
 * CloudWatch metric is identified by its whole dimension set, and an alarm on a subset never fires.
 */
const metricDimensionNames = ['service', 'function'] as const;

/**
 * The value of the `function` dimension: the deployed Lambda function's name when running in
 * Lambda (`<service>-<stage>-<function>`, unique per stage; what `Ref` of the function gives in
 * CloudFormation), else the short name the runtime was built with (local stack, tests, CLI).
 *
 * @example functionDimensionOf('sync', { AWS_LAMBDA_FUNCTION_NAME: 'swr-access-sync-prod-sync' }) // 'swr-access-sync-prod-sync'
 */
const functionDimensionOf = (
  functionName: string,
  env: Record<string, string | undefined> = process.env,
): string => {
  const deployed = env.AWS_LAMBDA_FUNCTION_NAME?.trim();
  return deployed === undefined || deployed === '' ? functionName : deployed;
};

interface PowertoolsMetricsOptions {
  /** CloudWatch namespace; default `SwrAccessSync` (POWERTOOLS_METRICS_NAMESPACE in serverless.yml). */
  namespace?: string;
  /** The `function` dimension (see `functionDimensionOf`); default: the service name. */
  functionName?: string;
}

/**
 * EMF metrics with the dimensions `service` and `function` on every metric.
 *
 * @example const metrics = createPowertoolsMetrics('swr-access-sync', { functionName: functionDimensionOf('sync') });
 */
const createPowertoolsMetrics = (
  serviceName: string,
  options: PowertoolsMetricsOptions = {},
): MetricsSink => {
  const metrics = new Metrics({
    namespace: options.namespace ?? 'SwrAccessSync',
    serviceName,
    defaultDimensions: { function: options.functionName ?? serviceName },
  });
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

export type { AuditRecord, Log, LogAttributes, MetricName, MetricsSink, PowertoolsMetricsOptions };
export {
  auditLogAttributes,
  createMemoryTelemetry,
  createPowertoolsLog,
  createPowertoolsMetrics,
  functionDimensionOf,
  MetricNames,
  metricDimensionNames,
  silentLog,
};
