/**
 * The policy read as YAML (JSON is YAML too), with every problem located in the file: the reader
 * for policies people write (the CLI, `serverless package`, an S3 object in YAML), and for any
 * text the JSON fast path of `parsePolicyText` does not accept. The functions load this module
 * (and the yaml package) only then: their packaged policy is plain JSON.
 */
import { LineCounter, parseDocument } from 'yaml';
import type { Policy } from '../domain.ts';
import { ConfigError, ErrorCodes } from '../errors.ts';
import { checkPolicyDocument, formatPath, type PathSegment } from './policy.ts';

/**
 * Parses a policy and keeps the document it was read into (plain data, as JSON would hold it).
 * Throws `ConfigError` (code POLICY) listing every problem as
 * `<file>:<line>:<column>: <yaml path>: <rule>`.
 *
 * @example const { policy, document } = parsePolicyDocument(text, 'config/policy.yaml');
 */
const parsePolicyDocument = (text: string, sourcePath: string): { policy: Policy; document: unknown } => {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const where = (offset: number | undefined): string => {
    if (offset === undefined) return sourcePath;
    const { line, col } = lineCounter.linePos(offset);
    return `${sourcePath}:${line}:${col}`;
  };
  const invalid = (problems: string[]): ConfigError =>
    new ConfigError(`invalid access policy ${sourcePath}`, problems, ErrorCodes.policy);

  if (doc.errors.length > 0)
    throw invalid(
      doc.errors.map((error) => `${where(error.pos[0])}: YAML syntax: ${error.message.split('\n')[0]}`),
    );

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    throw invalid([`${sourcePath}: YAML: ${(error as Error).message}`]);
  }
  if (raw === null || raw === undefined) throw invalid([`${sourcePath}: the policy is empty`]);

  const checked = checkPolicyDocument(raw, sourcePath);
  if (checked.policy !== undefined) return { policy: checked.policy, document: raw };
  const offsetOf = (path: PathSegment[]): number | undefined => {
    // A missing field has no node: point at the nearest enclosing one.
    for (let length = path.length; length >= 0; length--) {
      const node = doc.getIn(path.slice(0, length), true) as { range?: [number, number, number] } | undefined;
      if (node?.range !== undefined) return node.range[0];
    }
    return undefined;
  };
  const located = checked.problems.map((problem) => ({ problem, offset: offsetOf(problem.path) }));
  located.sort((a, b) => (a.offset ?? 0) - (b.offset ?? 0));
  throw invalid(
    located.map(({ problem, offset }) => `${where(offset)}: ${formatPath(problem.path)}: ${problem.rule}`),
  );
};

/**
 * Parses a policy (YAML or JSON), synchronously. Throws `ConfigError` (code POLICY) listing every
 * problem as `<file>:<line>:<column>: <yaml path>: <rule>`.
 *
 * @example
 * const policy = parsePolicy(await readFile(path, 'utf8'), path);
 * grantsOfTeam(policy, 'platform');
 */
const parsePolicy = (text: string, sourcePath: string): Policy =>
  parsePolicyDocument(text, sourcePath).policy;

export { parsePolicy, parsePolicyDocument };
