/**
 * Fault settings from outside the process (`swr-access simulate --faults`): a JSON object with the
 * fields of `FaultConfig`, every one optional, checked before the simulator starts.
 */
import { readFileSync } from 'node:fs';
import * as z from 'zod';
import { SimulatorConfigError } from './errors.ts';
import { type FaultConfig, GatewayVariants, LyingWrites, MalformedVariants } from './faults.ts';

const rate = z.number().min(0).max(1);

const ruleSchema = z.strictObject({
  target: z.string().optional(),
  method: z.string().optional(),
  kind: z.enum(['repo', 'namespace', 'list', 'iam']).optional(),
  status: z.number().int().min(100).max(599).optional(),
  code: z.string().min(1).optional(),
  gateway: z.enum(GatewayVariants).optional(),
  malformed: z.enum(MalformedVariants).optional(),
  lie: z.enum(LyingWrites).optional(),
  echo: z.boolean().optional(),
  times: z.number().int().min(1).optional(),
});

const quotaSchema = z.strictObject({
  ratePerSecond: z.number().positive(),
  burst: z.number().int().min(1),
  retryAfterSeconds: z.number().int().min(0).optional(),
});

const faultsSchema = z.strictObject({
  error5xxRate: rate.optional(),
  throttle429Rate: rate.optional(),
  busy409Rate: rate.optional(),
  tooMany403Rate: rate.optional(),
  latencyMs: z.number().int().min(0).max(60_000).optional(),
  hangRate: rate.optional(),
  resetRate: rate.optional(),
  failTargets: z.array(ruleSchema).optional(),
  retryAfterSeconds: z
    .union([z.number().int().min(0), z.literal('alternate'), z.literal('never')])
    .optional(),
  seed: z.number().int().optional(),
  iamFaults: z.boolean().optional(),
  malformedRate: rate.optional(),
  malformedVariants: z.array(z.enum(MalformedVariants)).optional(),
  gatewayRate: rate.optional(),
  gatewayVariants: z.array(z.enum(GatewayVariants)).optional(),
  ghostWriteRate: rate.optional(),
  htmlSuccessRate: rate.optional(),
  quota: quotaSchema.optional(),
});

/** Drops the keys zod reports as absent, so `{...defaults, ...parsed}` keeps the defaults. */
const defined = <T extends object>(value: T): Partial<T> =>
  Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;

/**
 * Validates fault settings; throws a SimulatorConfigError listing every problem.
 *
 * @example parseFaults({ malformedRate: 0.1, seed: 7 }) // { malformedRate: 0.1, seed: 7 }
 */
const parseFaults = (value: unknown): Partial<FaultConfig> => {
  const parsed = faultsSchema.safeParse(value);
  if (!parsed.success)
    throw new SimulatorConfigError(
      'invalid simulator faults',
      parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`),
    );
  return defined(parsed.data) as Partial<FaultConfig>;
};

/**
 * `--faults` takes inline JSON (starts with `{`) or the path of a JSON file.
 *
 * @example readFaults('{"gatewayRate":0.05}')
 */
const readFaults = (argument: string): Partial<FaultConfig> => {
  let text = argument;
  if (!argument.trimStart().startsWith('{')) {
    try {
      text = readFileSync(argument, 'utf8');
    } catch (error) {
      throw new SimulatorConfigError(`cannot read faults file ${argument}`, [], { cause: error });
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new SimulatorConfigError('--faults is not JSON', [], { cause: error });
  }
  return parseFaults(value);
};

export { parseFaults, readFaults };
