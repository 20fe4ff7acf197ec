/**
 * The SWR client and IAM directory logged in to a simulator as its seeded service account
 * (IAM password token): what tests, benchmarks and local tools use to talk to it.
 */
import type { Simulator } from '../sim/index.ts';
import { createSwrServices, type SwrServices, type SwrServicesHooks } from '../swr/index.ts';
import type { RateLimit } from '../swr/rate-limit.ts';
import type { RetryPolicy } from '../swr/retry.ts';

/**
 * @example const services = simulatorServices(sim, { retry: { baseDelayMs: 5 } });
 */
const simulatorServices = (
  sim: Simulator,
  options: { retry?: Partial<RetryPolicy>; rateLimit?: Partial<RateLimit>; hooks?: SwrServicesHooks } = {},
): SwrServices =>
  createSwrServices(
    {
      swrEndpoint: sim.swrUrl,
      iamEndpoint: sim.iamUrl,
      auth: {
        kind: 'password',
        domain: sim.seed.account.name,
        user: sim.seed.serviceAccount.name,
        password: sim.seed.serviceAccount.password,
        project: sim.seed.project.name,
      },
      ...(options.retry === undefined ? {} : { retry: options.retry }),
      ...(options.rateLimit === undefined ? {} : { rateLimit: options.rateLimit }),
    },
    options.hooks ?? {},
  );

/**
 * The same login as environment variables, for the functions' `readConfig`.
 *
 * @example createQueueRuntime({ functionName: 'sync', queue: 'accessChanges', env: { ...simulatorEnv(sim), TABLE_NAME } })
 */
const simulatorEnv = (sim: Simulator): Record<string, string> => ({
  SWR_ENDPOINT: sim.swrUrl,
  IAM_ENDPOINT: sim.iamUrl,
  HUAWEICLOUD_IAM_DOMAIN: sim.seed.account.name,
  HUAWEICLOUD_IAM_USER: sim.seed.serviceAccount.name,
  HUAWEICLOUD_IAM_PASSWORD: sim.seed.serviceAccount.password,
  HUAWEICLOUD_PROJECT: sim.seed.project.name,
});

export { simulatorEnv, simulatorServices };
