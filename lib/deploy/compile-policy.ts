/**
 * The policy as the functions read it: checked and compiled to JSON at package time, so that a
 * cold start reads it with `JSON.parse` and never loads a YAML parser. Run by
 * lib/deploy/serverless-plugin.mjs for every `serverless package` (and so `deploy`).
 *
 * The JSON is the document as written (the same schema, comments and anchors resolved), so the
 * functions check it again with the same rules, and a hand-edited copy that went wrong is still
 * refused with `<file>:<line>:<column>` pointing into the JSON.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { parsePolicyText } from '../core/policy.ts';
import { parsePolicyDocument } from '../core/policy-yaml.ts';
import type { Policy } from '../domain.ts';
import { ConfigError, ErrorCodes } from '../errors.ts';

interface CompileSettings {
  /** The service folder (serverless.yml); relative paths are taken from there. */
  serviceDir: string;
  /** The policy as written, YAML or JSON (relative to serviceDir). */
  source: string;
  /** Where the JSON goes (relative to serviceDir): the path the functions get as POLICY_FILE. */
  target: string;
}

/**
 * Reads, checks and compiles the policy; returns it. Throws `ConfigError` (code POLICY) with the
 * problems located in the source (`config/policy.yaml:7:11: teams.platform[1].repository: …`).
 *
 * @example await compilePolicyFile({ serviceDir, source: 'config/policy.yaml', target: '.policy/prod.json' });
 */
const compilePolicyFile = async (settings: CompileSettings): Promise<Policy> => {
  let text: string;
  try {
    text = await readFile(resolve(settings.serviceDir, settings.source), 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'read failed';
    throw new ConfigError(`cannot read access policy ${settings.source} (${code})`, [], ErrorCodes.policy, {
      cause: error,
    });
  }
  const { policy, document } = parsePolicyDocument(text, settings.source);
  const json = `${JSON.stringify(document, null, 2)}\n`;
  // What the functions will read must be this policy, through the JSON reader alone.
  const compiled = await parsePolicyText(json, settings.target);
  if (!isDeepStrictEqual({ ...compiled, sourcePath: settings.source }, policy))
    throw new ConfigError(
      `the access policy ${settings.source} does not survive JSON (a value JSON cannot hold?)`,
      [],
      ErrorCodes.policy,
    );
  const target = resolve(settings.serviceDir, settings.target);
  await mkdir(dirname(target), { recursive: true });
  await writeFile(target, json);
  return policy;
};

export type { CompileSettings };
export { compilePolicyFile };
