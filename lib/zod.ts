/**
 * zod for production code: `zod/mini` (functions instead of methods, so esbuild keeps only what a
 * module uses, and schemas are cheaper to build at cold start than zod's classic API) with the
 * English messages classic zod sets up by itself. Import it as `import * as z from '../zod.ts'`.
 * Tests, benchmarks, the simulator, the local stack and the CLI may keep `zod`.
 */
import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

config(en());

export * from 'zod/mini';
