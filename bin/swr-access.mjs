#!/usr/bin/env node
// The `swr-access` command: registers tsx so the TypeScript sources run as they are, then hands
// the command line to lib/cli/main.ts. The exit code is set, not forced, so output is flushed.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../lib/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
