/**
 * SCIM 2.0 on the wire (RFC 7643, 7644): schema URNs, the error type and body, request bodies
 * read into what we keep, and what we answer (resources, ListResponse, attribute projection).
 * Pure: no I/O.
 */

import { SyncError } from '../../errors.ts';
import * as z from '../../zod.ts';
import type { ScimGroupRecord, ScimUserRecord } from './state.ts';

const Urns = {
  user: 'urn:ietf:params:scim:schemas:core:2.0:User',
  group: 'urn:ietf:params:scim:schemas:core:2.0:Group',
  enterpriseUser: 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User',
  patchOp: 'urn:ietf:params:scim:api:messages:2.0:PatchOp',
  listResponse: 'urn:ietf:params:scim:api:messages:2.0:ListResponse',
  error: 'urn:ietf:params:scim:api:messages:2.0:Error',
  schema: 'urn:ietf:params:scim:schemas:core:2.0:Schema',
  resourceType: 'urn:ietf:params:scim:schemas:core:2.0:ResourceType',
  serviceProviderConfig: 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig',
} as const;

/** RFC 7644 §3.12 `scimType` values we answer with. */
const ScimTypes = {
  invalidFilter: 'invalidFilter',
  tooMany: 'tooMany',
  uniqueness: 'uniqueness',
  mutability: 'mutability',
  invalidSyntax: 'invalidSyntax',
  invalidPath: 'invalidPath',
  noTarget: 'noTarget',
  invalidValue: 'invalidValue',
} as const;

/** A SCIM error answer. 5xx ones are retryable (the identity provider tries again). */
class ScimError extends SyncError {
  readonly status: number;
  readonly scimType: string | undefined;

  constructor(status: number, detail: string, scimType?: string, options?: ErrorOptions) {
    super(detail, { ...options, code: `SCIM_${status}`, retryable: status >= 500 });
    this.name = 'ScimError';
    this.status = status;
    this.scimType = scimType;
  }
}

/** The error body; `detail` is left out where it would help an attacker (401). */
const scimErrorBody = (status: number, scimType?: string, detail?: string) => ({
  schemas: [Urns.error],
  status: String(status),
  ...(scimType === undefined ? {} : { scimType }),
  ...(detail === undefined ? {} : { detail }),
});

/** Keys that must never reach an object as data: they would reach the prototype chain. */
const forbiddenKeys = new Set(['__proto__', 'constructor', 'prototype']);

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Throws a 400 when a key anywhere in `value` could reach a prototype. */
const assertPlainData = (value: unknown, where: string, depth = 0): void => {
  if (depth > 20) throw new ScimError(400, `${where} is nested too deeply`, ScimTypes.invalidSyntax);
  if (Array.isArray(value)) {
    for (const item of value) assertPlainData(item, where, depth + 1);
    return;
  }
  if (!isRecord(value)) return;
  for (const [key, child] of Object.entries(value)) {
    if (forbiddenKeys.has(key))
      throw new ScimError(400, `${where} may not use the key ${key}`, ScimTypes.invalidValue);
    assertPlainData(child, where, depth + 1);
  }
};

/** SCIM attribute names are case-insensitive: the key of `object` that means `name`. */
const keyOf = (object: Record<string, unknown>, name: string): string | undefined => {
  const wanted = name.toLowerCase();
  return Object.keys(object).find((key) => key.toLowerCase() === wanted);
};

const attributeOf = (object: Record<string, unknown>, name: string): unknown => {
  const key = keyOf(object, name);
  return key === undefined ? undefined : object[key];
};

/**
 * Entra (without the `aadOptscim062020` flag) sends booleans as the strings "True" and "False".
 *
 * @example booleanOf('False') // false
 */
const booleanOf = (value: unknown): boolean | undefined => {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const lower = value.trim().toLowerCase();
    if (lower === 'true') return true;
    if (lower === 'false') return false;
  }
  return undefined;
};

/** The request body as JSON: 400 invalidSyntax when it is not. */
const parseJsonBody = (body: string): unknown => {
  if (body.trim() === '') throw new ScimError(400, 'the request has no body', ScimTypes.invalidSyntax);
  try {
    return JSON.parse(body) as unknown;
  } catch {
    throw new ScimError(400, 'the request body is not valid JSON', ScimTypes.invalidSyntax);
  }
};

const schemasOf = (body: Record<string, unknown>): string[] => {
  const schemas = attributeOf(body, 'schemas');
  return Array.isArray(schemas)
    ? schemas.filter((schema): schema is string => typeof schema === 'string')
    : [];
};

/** Attributes we compute or never keep: everything else is stored as sent. */
const serverOwnedUserKeys = new Set(['id', 'meta', 'schemas', 'password', 'groups']);
/** Kept under their canonical spelling, whatever case the provider used. */
const indexedUserKeys = new Set(['username', 'active']);

interface UserInput {
  userName: string;
  active: boolean;
  attributes: Record<string, unknown>;
}

const maxUserNameLength = 256;

/**
 * A User as POST or PUT sends it, or as a PATCH left it: checked and split into what we index
 * (`userName`, `active`) and what we keep as sent. `password` is dropped (never stored or logged).
 *
 * @example readUser({ schemas: [Urns.user], userName: 'ann', active: 'False' }) // { userName: 'ann', active: false, … }
 */
const readUser = (value: unknown, options: { checkSchemas: boolean }): UserInput => {
  if (!isRecord(value)) throw new ScimError(400, 'a User must be a JSON object', ScimTypes.invalidSyntax);
  assertPlainData(value, 'the User');
  if (
    options.checkSchemas &&
    !schemasOf(value).some((schema) => schema.toLowerCase() === Urns.user.toLowerCase())
  )
    throw new ScimError(400, `schemas must include ${Urns.user}`, ScimTypes.invalidSyntax);
  const userName = attributeOf(value, 'userName');
  if (typeof userName !== 'string' || userName.trim() === '')
    throw new ScimError(400, 'userName is required (a non-empty string)', ScimTypes.invalidValue);
  if (userName.length > maxUserNameLength)
    throw new ScimError(
      400,
      `userName must be at most ${maxUserNameLength} characters`,
      ScimTypes.invalidValue,
    );
  const activeValue = attributeOf(value, 'active');
  const active = activeValue === undefined || activeValue === null ? true : booleanOf(activeValue);
  if (active === undefined) throw new ScimError(400, 'active must be true or false', ScimTypes.invalidValue);
  const attributes: Record<string, unknown> = {};
  for (const [key, attribute] of Object.entries(value))
    if (!serverOwnedUserKeys.has(key.toLowerCase()) && !indexedUserKeys.has(key.toLowerCase()))
      attributes[key] = attribute;
  return { userName, active, attributes: { ...attributes, userName, active } };
};

const memberSchema = z.looseObject({ value: z.string().check(z.minLength(1), z.maxLength(256)) });

interface GroupInput {
  displayName: string;
  externalId: string | undefined;
  /** Absent: the request said nothing about members (a PUT keeps them). */
  members: string[] | undefined;
}

const maxDisplayNameLength = 256;

/**
 * A Group as POST or PUT sends it, or as a PATCH left it. Members are kept by id only: `display`
 * and `$ref` are the provider's view, not ours.
 *
 * @example readGroup({ schemas: [Urns.group], displayName: 'SRE', members: [{ value: 'u1' }] }) // { displayName: 'SRE', members: ['u1'], … }
 */
const readGroup = (value: unknown, options: { checkSchemas: boolean }): GroupInput => {
  if (!isRecord(value)) throw new ScimError(400, 'a Group must be a JSON object', ScimTypes.invalidSyntax);
  assertPlainData(value, 'the Group');
  if (
    options.checkSchemas &&
    !schemasOf(value).some((schema) => schema.toLowerCase() === Urns.group.toLowerCase())
  )
    throw new ScimError(400, `schemas must include ${Urns.group}`, ScimTypes.invalidSyntax);
  const displayName = attributeOf(value, 'displayName');
  if (typeof displayName !== 'string' || displayName.trim() === '')
    throw new ScimError(400, 'displayName is required (a non-empty string)', ScimTypes.invalidValue);
  if (displayName.length > maxDisplayNameLength || /\p{Cc}/u.test(displayName))
    throw new ScimError(
      400,
      `displayName must be at most ${maxDisplayNameLength} characters, without control characters`,
      ScimTypes.invalidValue,
    );
  const externalId = attributeOf(value, 'externalId');
  if (externalId !== undefined && externalId !== null && typeof externalId !== 'string')
    throw new ScimError(400, 'externalId must be a string', ScimTypes.invalidValue);
  const rawMembers = attributeOf(value, 'members');
  let members: string[] | undefined;
  if (rawMembers !== undefined && rawMembers !== null) {
    const parsed = z.array(memberSchema).safeParse(rawMembers);
    if (!parsed.success)
      throw new ScimError(400, 'members must be a list of { "value": "<user id>" }', ScimTypes.invalidValue);
    members = [...new Set(parsed.data.map((member) => member.value))];
  }
  return { displayName, externalId: typeof externalId === 'string' ? externalId : undefined, members };
};

/** `W/"3"`: the version as a weak ETag, so a client can see that a resource changed. */
const versionTag = (version: number): string => `W/"${version}"`;

/** The User as we answer it: what the provider sent, plus id, schemas and meta. */
const userResource = (record: ScimUserRecord, baseUrl: string): Record<string, unknown> => {
  const extensions = Object.keys(record.attributes).filter((key) => key.startsWith('urn:'));
  return {
    ...record.attributes,
    schemas: [Urns.user, ...extensions],
    id: record.id,
    userName: record.userName,
    active: record.active,
    meta: {
      resourceType: 'User',
      created: record.created,
      lastModified: record.lastModified,
      location: `${baseUrl}/Users/${record.id}`,
      version: versionTag(record.version),
    },
  };
};

/** The Group as we answer it; `members` only when they were read. */
const groupResource = (
  record: ScimGroupRecord,
  baseUrl: string,
  members?: readonly string[],
): Record<string, unknown> => ({
  schemas: [Urns.group],
  id: record.id,
  displayName: record.displayName,
  ...(record.externalId === undefined ? {} : { externalId: record.externalId }),
  ...(members === undefined
    ? {}
    : { members: members.map((value) => ({ value, $ref: `${baseUrl}/Users/${value}`, type: 'User' })) }),
  meta: {
    resourceType: 'Group',
    created: record.created,
    lastModified: record.lastModified,
    location: `${baseUrl}/Groups/${record.id}`,
    version: versionTag(record.version),
  },
});

/** Attributes a client cannot exclude from a resource (RFC 7643 §7: returned "always"). */
const alwaysReturned = new Set(['id', 'schemas', 'meta']);

const splitList = (value: string | undefined): string[] =>
  value === undefined
    ? []
    : value
        .split(',')
        .map((item) => item.trim().toLowerCase())
        .filter((item) => item !== '');

/**
 * Applies `attributes` / `excludedAttributes` (top-level names, case-insensitive).
 *
 * @example project(group, { excludedAttributes: 'members' })
 */
const project = (
  resource: Record<string, unknown>,
  query: { attributes?: string; excludedAttributes?: string },
): Record<string, unknown> => {
  const only = splitList(query.attributes).map((name) => name.split('.')[0] ?? name);
  const excluded = splitList(query.excludedAttributes);
  return Object.fromEntries(
    Object.entries(resource).filter(([key]) => {
      const lower = key.toLowerCase();
      if (alwaysReturned.has(lower)) return true;
      if (only.length > 0) return only.includes(lower);
      return !excluded.includes(lower);
    }),
  );
};

/** Whether the request asked not to see `attribute` (so it need not be read). */
const isExcluded = (
  query: { attributes?: string; excludedAttributes?: string },
  attribute: string,
): boolean => {
  const only = splitList(query.attributes);
  if (only.length > 0) return !only.some((name) => name.split('.')[0] === attribute.toLowerCase());
  return splitList(query.excludedAttributes).includes(attribute.toLowerCase());
};

const defaultPageSize = 100;
const maxPageSize = 1000;

/**
 * `startIndex` (1-based) and `count` as RFC 7644 §3.4.2.4 reads them: a value below 1 is 1, a
 * negative count is 0, a count above the maximum is the maximum.
 */
const pageOf = (query: { startIndex?: string; count?: string }): { startIndex: number; count: number } => {
  const number = (text: string | undefined, fallback: number): number => {
    if (text === undefined || text.trim() === '') return fallback;
    const value = Number(text);
    if (!Number.isInteger(value))
      throw new ScimError(400, 'startIndex and count must be whole numbers', ScimTypes.invalidValue);
    return value;
  };
  return {
    startIndex: Math.max(1, number(query.startIndex, 1)),
    count: Math.min(maxPageSize, Math.max(0, number(query.count, defaultPageSize))),
  };
};

/** A page of resources as a ListResponse; integers, not strings (Okta reads them as numbers). */
const listResponse = (
  resources: readonly Record<string, unknown>[],
  page: { startIndex: number; count: number },
) => {
  const slice = resources.slice(page.startIndex - 1, page.startIndex - 1 + page.count);
  return {
    schemas: [Urns.listResponse],
    totalResults: resources.length,
    startIndex: page.startIndex,
    itemsPerPage: slice.length,
    Resources: slice,
  };
};

export type { GroupInput, UserInput };
export {
  assertPlainData,
  attributeOf,
  booleanOf,
  groupResource,
  isExcluded,
  isRecord,
  keyOf,
  listResponse,
  maxPageSize,
  pageOf,
  parseJsonBody,
  project,
  readGroup,
  readUser,
  ScimError,
  ScimTypes,
  scimErrorBody,
  Urns,
  userResource,
};
