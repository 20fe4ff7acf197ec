/**
 * Turns a correct answer into one of the broken answers seen from real services and the proxies in
 * front of them: documented fields missing or mistyped, an HTML page, a cut-off body, nothing.
 */
import type { MalformedVariant } from './faults.ts';

interface RawBody {
  text: string;
  contentType: string;
}

const json = (value: unknown): RawBody => ({
  text: JSON.stringify(value),
  contentType: 'application/json;charset=utf-8',
});

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** A sign-in page of a corporate proxy: what a 200 from the wrong host looks like. */
const htmlPage = (): string =>
  '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>\n' +
  '<body><h1>Please sign in</h1><form method="post" action="/login"><input name="user"></form></body></html>\n';

/** The first entry of a list to corrupt; a made-up one when the list is empty. */
const firstEntry = (entries: unknown[], fallback: Json): Json => {
  const first = entries.find(isObject);
  if (first !== undefined) return first;
  entries.push(fallback);
  return fallback;
};

const strangerAuth = (): Json => ({
  user_id: 'ffffffffffffffffffffffffffffffff',
  user_name: 'stranger',
  auth: 1,
});

/** The access answer with its others_auths broken as `variant` says. */
const brokenAccess = (body: Json, variant: MalformedVariant): Json => {
  const copy: Json = structuredClone(body);
  const others = Array.isArray(copy.others_auths) ? (copy.others_auths as unknown[]) : [];
  switch (variant) {
    case 'others-missing':
      delete copy.others_auths;
      return copy;
    case 'others-null':
      copy.others_auths = null;
      return copy;
    case 'others-not-array':
      copy.others_auths = Object.fromEntries(others.map((entry, i) => [String(i), entry]));
      return copy;
    case 'auth-string': {
      const entry = firstEntry(others, strangerAuth());
      entry.auth = String(entry.auth);
      break;
    }
    case 'auth-unknown':
      firstEntry(others, strangerAuth()).auth = 2;
      break;
    case 'user-id-number':
      firstEntry(others, strangerAuth()).user_id = 123;
      break;
    case 'user-id-missing':
      delete firstEntry(others, strangerAuth()).user_id;
      break;
    default:
      return copy;
  }
  copy.others_auths = others;
  return copy;
};

/** The repository list broken as `variant` says. */
const brokenList = (body: unknown[], variant: MalformedVariant): unknown => {
  const copy = structuredClone(body);
  const entry = () => firstEntry(copy, { name: 'placeholder', namespace: 'placeholder' });
  switch (variant) {
    case 'list-not-array':
      return { total: copy.length, repositories: copy };
    case 'list-name-missing':
      delete entry().name;
      return copy;
    case 'list-name-number':
      entry().name = 42;
      return copy;
    default:
      return copy;
  }
};

/**
 * The body a successful answer is replaced with.
 *
 * @example malformBody({ self_auth: {…}, others_auths: [] }, 'others-null').text // '{"self_auth":{…},"others_auths":null}'
 */
const malformBody = (body: unknown, variant: MalformedVariant): RawBody => {
  const text = JSON.stringify(body ?? null);
  switch (variant) {
    case 'html':
      return { text: htmlPage(), contentType: 'text/html;charset=utf-8' };
    case 'plain-text':
      return { text: 'OK', contentType: 'text/plain' };
    case 'empty':
      return { text: '', contentType: 'application/json;charset=utf-8' };
    case 'truncated':
      // Half of the answer, cut where the connection dropped; always at least one character short.
      return {
        text: text.slice(0, Math.max(1, Math.floor(text.length / 2))),
        contentType: 'application/json;charset=utf-8',
      };
    default:
      if (Array.isArray(body)) return json(brokenList(body, variant));
      if (isObject(body)) return json(brokenAccess(body, variant));
      return json(body);
  }
};

export type { RawBody };
export { htmlPage, malformBody };
