/**
 * Keeps secrets out of everything that leaves the process: log records, error messages, DLQ
 * attributes, CLI output. Upstream services echo what they were sent (a gateway quoting the
 * Authorization header, IAM quoting a request body), so text from SWR or IAM is never trusted to
 * be clean: every configured secret value is replaced, and so is anything shaped like a token.
 *
 * One process-wide registry (`registerSecrets`), filled when the configuration and the
 * credentials secret are read; `createRedactor` gives tests and tools a registry of their own.
 */

/** Replacement text: says something was there without saying what. */
const redactedMark = '[REDACTED]';

/** Shorter values would match ordinary words; a 1–3 character secret is no secret anyway. */
const minSecretLength = 4;

/**
 * Shapes of credentials whatever their source:
 * - Huawei IAM tokens (PKI tokens start with `MII`, then base64);
 * - `Bearer <token>`, `X-Auth-Token: <token>`, `Signature=<hex>`;
 * - `password`/`secret`/`token`/`sk` followed by `:` or `=` and a value;
 * - any run of 40 or more base64/base64url characters that mixes upper case, lower case and
 *   digits (secret keys, long tokens). IAM user ids (32 hex characters), hashes and SWR names
 *   (lower case only) stay readable: a person needs them to act on an error.
 */
const tokenShapes: readonly RegExp[] = [
  /MII[A-Za-z0-9+/=_-]{16,}/g,
  /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi,
  /\b(x-auth-token|x-subject-token|x-security-token|authorization)(["']?\s*[:=]\s*["']?)[^\s"',;}]+/gi,
  /\b(Signature|Access)=([0-9A-Za-z]{16,})/g,
  /\b(password|passwd|secret|secret_?key|access_?key_?secret|sk|token)(["']?\s*[:=]\s*["']?)[^\s"',;}]{4,}/gi,
  /[A-Za-z0-9+/_-]{40,}={0,2}/g,
];

const looksRandom = (run: string): boolean => /[A-Z]/.test(run) && /[a-z]/.test(run) && /[0-9]/.test(run);

interface Redactor {
  /** Adds secret values (empty, short and undefined ones are ignored). */
  add(values: Iterable<string | undefined>): void;
  /** The text with every known secret and every token-shaped run replaced. */
  redact(text: string): string;
  /** How many secret values are registered (for tests). */
  size(): number;
}

const escapeRegExp = (value: string): string => value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * @example
 * const redactor = createRedactor();
 * redactor.add(['s3cr3t-password']);
 * redactor.redact('IAM said: wrong password s3cr3t-password'); // 'IAM said: wrong password [REDACTED]'
 */
const createRedactor = (): Redactor => {
  const secrets = new Set<string>();
  let pattern: RegExp | undefined;

  const rebuild = (): void => {
    // Longest first: a secret that contains another is replaced whole.
    const sorted = [...secrets].sort((a, b) => b.length - a.length).map(escapeRegExp);
    pattern = sorted.length === 0 ? undefined : new RegExp(sorted.join('|'), 'g');
  };

  return {
    add(values) {
      let changed = false;
      for (const value of values) {
        if (value === undefined) continue;
        for (const candidate of new Set([value, value.trim()])) {
          if (candidate.length < minSecretLength || secrets.has(candidate)) continue;
          secrets.add(candidate);
          // The form it takes inside a JSON string or a URL query, as an echo would quote it.
          for (const encoded of [JSON.stringify(candidate).slice(1, -1), encodeURIComponent(candidate)])
            if (encoded !== candidate && encoded.length >= minSecretLength) secrets.add(encoded);
          changed = true;
        }
      }
      if (changed) rebuild();
    },
    redact(text) {
      let out = pattern === undefined ? text : text.replace(pattern, redactedMark);
      for (const shape of tokenShapes)
        out = out.replace(shape, (match, name?: string, separator?: string) =>
          typeof name === 'string' && typeof separator === 'string' && /[:=\s"']/.test(separator)
            ? `${name}${separator}${redactedMark}`
            : typeof name === 'string' && /^(Bearer|Basic)$/i.test(name)
              ? `${name} ${redactedMark}`
              : typeof name === 'string' && /^(Signature|Access)$/.test(name)
                ? `${name}=${redactedMark}`
                : looksRandom(match) || match.startsWith('MII')
                  ? redactedMark
                  : match,
        );
      return out;
    },
    size: () => secrets.size,
  };
};

const processRedactor = createRedactor();

/**
 * Registers secret values for the whole process: configuration variables, the credentials secret,
 * intake tokens. Call it as soon as a value is known, before anything can log it.
 *
 * @example registerSecrets([env.SWR_AUTH_TOKEN, env.HUAWEICLOUD_IAM_PASSWORD]);
 */
const registerSecrets = (values: Iterable<string | undefined>): void => processRedactor.add(values);

/**
 * Redacts with the process-wide registry and the token shapes.
 *
 * @example log.error('IAM refused', { reason: redactSecrets(error.message) });
 */
const redactSecrets = (text: string): string => processRedactor.redact(text);

export type { Redactor };
export { createRedactor, redactedMark, redactSecrets, registerSecrets };
