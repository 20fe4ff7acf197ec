/**
 * middy middleware of our own: small, over a `defaults` object, in the middy style.
 */
import type middy from '@middy/core';
import type { MetricsSink } from './observability.ts';

interface FlushMetricsOptions {
  metrics: MetricsSink;
}

/** Writes the invocation's metrics (EMF) when it ends, whether it succeeded or not. */
const flushMetrics = (options: FlushMetricsOptions): middy.MiddlewareObj => {
  const flush = async (): Promise<void> => {
    options.metrics.flush();
  };
  return { after: flush, onError: flush };
};

export type { FlushMetricsOptions };
export { flushMetrics };
