/**
 * Command-line parsing on `node:util` parseArgs (strict: an unknown or malformed option is a
 * usage error naming the command's usage), plus typed readers for the values.
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { UsageError } from './io.ts';

type OptionSpec = NonNullable<ParseArgsConfig['options']>;

interface ParsedCommand {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  help: boolean;
}

/**
 * @example
 * const { values, help } = parseCommandArgs(argv, { json: { type: 'boolean' } }, usage, 0);
 */
const parseCommandArgs = (
  argv: readonly string[],
  options: OptionSpec,
  usage: string,
  maxPositionals: number,
): ParsedCommand => {
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: true,
    }) as { values: Record<string, unknown>; positionals: string[] };
  } catch (error) {
    // parseArgs says what is wrong ("Unknown option '--x'"), in one line, with no value echoed.
    throw new UsageError((error as Error).message.split('\n')[0] ?? 'invalid arguments', usage, {
      cause: error,
    });
  }
  const help = parsed.values.help === true;
  if (!help && parsed.positionals.length > maxPositionals)
    throw new UsageError(`unexpected argument ${parsed.positionals[maxPositionals] ?? ''}`, usage);
  return {
    values: parsed.values as Record<string, string | boolean | undefined>,
    positionals: parsed.positionals,
    help,
  };
};

const stringValue = (parsed: ParsedCommand, name: string): string | undefined => {
  const value = parsed.values[name];
  return typeof value === 'string' ? value : undefined;
};

const requiredString = (parsed: ParsedCommand, name: string, usage: string): string => {
  const value = stringValue(parsed, name);
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`, usage);
  return value;
};

const flag = (parsed: ParsedCommand, name: string): boolean => parsed.values[name] === true;

/** A whole number from `min` to `max`, or `fallback` when the option is absent. */
const intValue = (
  parsed: ParsedCommand,
  name: string,
  range: { min: number; max: number },
  usage: string,
): number | undefined => {
  const value = stringValue(parsed, name);
  if (value === undefined) return undefined;
  const number = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < range.min || number > range.max)
    throw new UsageError(`--${name} needs a whole number from ${range.min} to ${range.max}`, usage);
  return number;
};

export type { OptionSpec, ParsedCommand };
export { flag, intValue, parseCommandArgs, requiredString, stringValue };
