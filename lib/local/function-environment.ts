/**
 * The environment a function gets on top of the stack's, as serverless.yml deploys it from
 * `config/queues.json` (`functionEnvironment`): the local stack and the benchmarks read the same
 * file, so a function runs locally with the settings it has in AWS.
 */
import queuesConfig from '../../config/queues.json' with { type: 'json' };

const deployed: Readonly<Record<string, Readonly<Record<string, string>>>> = queuesConfig.functionEnvironment;

/**
 * @example const env = { ...stackEnv, ...functionEnvironment('offboard'), ...overrides };
 */
const functionEnvironment = (functionName: string): Record<string, string> => ({
  ...(deployed[functionName] ?? {}),
});

export { functionEnvironment };
