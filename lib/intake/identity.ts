/**
 * How an identity-provider user becomes an IAM user (policy `identity`): one attribute of the
 * user (`userName`, the e-mail, its local part, `externalId`, or any attribute by SCIM path),
 * lowercased when the policy says so, resolved by exact IAM name. A user that maps to no IAM user,
 * or to an ambiguous one, is "unmapped": nothing changes for it and the reason is reported. An
 * IAM that cannot be read is not an answer: that error propagates (retryable).
 */
import type { CallOptions, IamUser, IdentityMapping, UserDirectoryPort } from '../domain.ts';
import { isRetryable } from '../errors.ts';

/** Attributes of an IdP user as SCIM carries them (a SCIM User resource, or what a hook knows). */
type IdpUserAttributes = Record<string, unknown>;

type MappedName = { ok: true; name: string } | { ok: false; reason: string };

type Resolution = { kind: 'resolved'; user: IamUser } | { kind: 'unmapped'; name?: string; reason: string };

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** SCIM attribute names are case-insensitive (RFC 7643 §2.1). */
const own = (object: Record<string, unknown>, key: string): unknown => {
  const wanted = key.toLowerCase();
  const found = Object.keys(object).find((candidate) => candidate.toLowerCase() === wanted);
  return found === undefined ? undefined : object[found];
};

const text = (value: unknown): string | undefined => {
  if (typeof value === 'string') return value.trim() === '' ? undefined : value.trim();
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
};

/**
 * The value at a SCIM attribute path: `nickName`, `name.givenName`,
 * `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`. A multi-valued
 * attribute yields its primary value (else its first).
 *
 * @example attributeAt({ name: { givenName: 'Ann' } }, 'name.givenName') // 'Ann'
 */
const attributeAt = (user: IdpUserAttributes, path: string): unknown => {
  const colon = path.lastIndexOf(':');
  let current: unknown = user;
  let rest = path;
  if (colon >= 0) {
    current = isRecord(user) ? own(user, path.slice(0, colon)) : undefined;
    rest = path.slice(colon + 1);
  }
  for (const segment of rest.split('.')) {
    if (Array.isArray(current))
      current = current.find((item) => isRecord(item) && own(item, 'primary') === true) ?? current[0];
    current = isRecord(current) ? own(current, segment) : undefined;
  }
  if (Array.isArray(current))
    current = current.find((item) => isRecord(item) && own(item, 'primary') === true) ?? current[0];
  return isRecord(current) ? own(current, 'value') : current;
};

/** The user's e-mail: the primary one, else the `work` one, else the first (as Entra maps it). */
const emailOf = (user: IdpUserAttributes): string | undefined => {
  const emails = own(user, 'emails');
  if (Array.isArray(emails)) {
    const entries = emails.filter(isRecord);
    const chosen =
      entries.find((entry) => own(entry, 'primary') === true) ??
      entries.find((entry) => String(own(entry, 'type')).toLowerCase() === 'work') ??
      entries[0];
    const value = chosen === undefined ? undefined : text(own(chosen, 'value'));
    if (value !== undefined) return value;
  }
  return undefined;
};

const describeSource = (identity: IdentityMapping): string =>
  identity.source === 'attribute' ? `attribute ${identity.attribute ?? ''}` : identity.source;

/**
 * The IAM user name the policy's identity mapping gives an IdP user, or why there is none.
 *
 * @example mappedIamName({ source: 'emailLocalPart', lowercase: true }, { emails: [{ value: 'Ann.Lee@corp.example', primary: true }] })
 * // { ok: true, name: 'ann.lee' }
 */
const mappedIamName = (identity: IdentityMapping, user: IdpUserAttributes): MappedName => {
  let value: string | undefined;
  switch (identity.source) {
    case 'userName':
      value = text(own(user, 'userName'));
      break;
    case 'externalId':
      value = text(own(user, 'externalId'));
      break;
    case 'email':
      value = emailOf(user);
      break;
    case 'emailLocalPart': {
      const email = emailOf(user);
      const at = email?.lastIndexOf('@') ?? -1;
      value = email === undefined || at <= 0 ? undefined : email.slice(0, at);
      break;
    }
    case 'attribute':
      value = text(attributeAt(user, identity.attribute ?? ''));
      break;
  }
  if (value === undefined)
    return {
      ok: false,
      reason: `the user has no ${describeSource(identity)} to take the IAM user name from`,
    };
  return { ok: true, name: identity.lowercase ? value.toLowerCase() : value };
};

/**
 * Resolves the mapped name in IAM by exact name. Unmapped: no name, no such IAM user, or a
 * permanent IAM answer (an invalid name, two users of that name). Throws what retrying may cure.
 *
 * @example
 * const resolution = await resolveIamUser(identity, scimUser, directory, { deadline });
 * if (resolution.kind === 'unmapped') log.warn('unmapped user', { reason: resolution.reason });
 */
const resolveIamUser = async (
  identity: IdentityMapping,
  user: IdpUserAttributes,
  directory: UserDirectoryPort,
  options?: CallOptions,
): Promise<Resolution> => {
  const mapped = mappedIamName(identity, user);
  if (!mapped.ok) return { kind: 'unmapped', reason: mapped.reason };
  try {
    const found = await directory.findByName(mapped.name, options);
    if (found === undefined)
      return {
        kind: 'unmapped',
        name: mapped.name,
        reason: `IAM knows no user named ${JSON.stringify(mapped.name)}`,
      };
    return { kind: 'resolved', user: { id: found.id, name: found.name } };
  } catch (error) {
    if (isRetryable(error)) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    return { kind: 'unmapped', name: mapped.name, reason };
  }
};

export type { IdpUserAttributes, MappedName, Resolution };
export { attributeAt, emailOf, mappedIamName, resolveIamUser };
