import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Integration suites start real servers on 127.0.0.1; two cores, so keep parallelism modest.
    maxWorkers: 2,
  },
});
