/**
 * How the Lambda Node.js runtime starts `node` for a function, so that a function instance run
 * here sizes its memory as on Lambda. The runtime's bootstrap (`/var/runtime/bootstrap` of the
 * public `nodejs` base images) gives node a V8 heap sized from the function's memory
 * (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`): a tenth of it for the young generation (a semi-space is
 * half of that), the rest for the old generation. Without these flags V8 sizes its heap from the
 * machine it runs on, and on a machine of many GiB it lets the heap grow to several times what
 * survives a full collection before collecting again: on the offboarding flood, one access-changes
 * instance as a plain process peaked at 173 MiB of heap used with about 35 MiB surviving each full
 * collection, and at 73 MiB with the flags of its 512 MB function. A plain process would show
 * garbage a Lambda instance never holds.
 */

/** The bootstrap's integer arithmetic (shell `$(( ))`), for a memory size in MB. */
const lambdaHeapSizes = (memorySizeMb: number): { semiSpaceMb: number; oldSpaceMb: number } => {
  if (!Number.isInteger(memorySizeMb) || memorySizeMb < 128)
    throw new RangeError(`a Lambda function has at least 128 MB, in whole MB: got ${memorySizeMb}`);
  const newSpaceMb = Math.floor(memorySizeMb / 10);
  return { semiSpaceMb: Math.floor(newSpaceMb / 2), oldSpaceMb: memorySizeMb - newSpaceMb };
};

/**
 * The node flags the bootstrap passes for a function of `memorySizeMb`.
 *
 * @example lambdaNodeArgs(512) // ['--expose-gc', '--max-http-header-size=81920', '--max-semi-space-size=25', '--max-old-space-size=461']
 */
const lambdaNodeArgs = (memorySizeMb: number): string[] => {
  const { semiSpaceMb, oldSpaceMb } = lambdaHeapSizes(memorySizeMb);
  return [
    '--expose-gc',
    '--max-http-header-size=81920',
    `--max-semi-space-size=${semiSpaceMb}`,
    `--max-old-space-size=${oldSpaceMb}`,
  ];
};

export { lambdaHeapSizes, lambdaNodeArgs };
