/**
 * SCIM PATCH (RFC 7644 §3.5.2) on top of `scim-patch`: the body is read and checked here (op
 * names in any case, as Entra capitalises them; nothing that could reach a prototype), the
 * library applies the operations. For groups we also work out which members an operation can
 * touch, so that adding one member to a large group does not read all of them.
 */
import { type ScimPatchOperation, scimPatch } from 'scim-patch';
import { assertPlainData, attributeOf, isRecord, keyOf, ScimError, ScimTypes, Urns } from './protocol.ts';

type PatchOp = 'add' | 'remove' | 'replace';

interface PatchOperation {
  op: PatchOp;
  path?: string;
  value?: unknown;
}

const maxOperations = 1000;

const forbiddenSegments = new Set(['__proto__', 'constructor', 'prototype']);

/** Path segments as the library splits them (periods, schema colons, filter brackets). */
const segmentsOf = (path: string): string[] => path.split(/[.:[\]\s"]+/).filter((segment) => segment !== '');

const assertSafePath = (path: string, where: string): void => {
  if (segmentsOf(path).some((segment) => forbiddenSegments.has(segment)))
    throw new ScimError(400, `${where} may not name ${path}`, ScimTypes.invalidPath);
};

/** A value object's keys are paths too when there is no `path` ("name.givenName": …). */
const assertSafeValue = (value: unknown, where: string): void => {
  assertPlainData(value, where);
  if (isRecord(value)) for (const key of Object.keys(value)) assertSafePath(key, where);
};

/**
 * Reads a PatchOp body: `schemas` must name the PatchOp message, `Operations` must list 1 to 1000
 * operations of `add`, `remove` or `replace` (any case); `remove` needs a path.
 *
 * @example readPatch({ schemas: [Urns.patchOp], Operations: [{ op: 'Replace', path: 'active', value: 'False' }] })
 * // [{ op: 'replace', path: 'active', value: 'False' }]
 */
const readPatch = (body: unknown): PatchOperation[] => {
  if (!isRecord(body)) throw new ScimError(400, 'a PatchOp must be a JSON object', ScimTypes.invalidSyntax);
  const schemas = attributeOf(body, 'schemas');
  if (
    !Array.isArray(schemas) ||
    !schemas.some(
      (schema) => typeof schema === 'string' && schema.toLowerCase() === Urns.patchOp.toLowerCase(),
    )
  )
    throw new ScimError(400, `schemas must include ${Urns.patchOp}`, ScimTypes.invalidSyntax);
  const operations = attributeOf(body, 'Operations');
  if (!Array.isArray(operations) || operations.length === 0)
    throw new ScimError(400, 'Operations must list at least one operation', ScimTypes.invalidSyntax);
  if (operations.length > maxOperations)
    throw new ScimError(400, `at most ${maxOperations} operations per request`, ScimTypes.tooMany);
  return operations.map((operation, index): PatchOperation => {
    const where = `Operations[${index}]`;
    if (!isRecord(operation)) throw new ScimError(400, `${where} must be an object`, ScimTypes.invalidSyntax);
    const op = attributeOf(operation, 'op');
    const lower = typeof op === 'string' ? op.trim().toLowerCase() : '';
    if (lower !== 'add' && lower !== 'remove' && lower !== 'replace')
      throw new ScimError(400, `${where}.op must be add, remove or replace`, ScimTypes.invalidSyntax);
    const path = attributeOf(operation, 'path');
    if (path !== undefined && path !== null && (typeof path !== 'string' || path.trim() === ''))
      throw new ScimError(400, `${where}.path must be a non-empty string`, ScimTypes.invalidPath);
    if (typeof path === 'string') assertSafePath(path, where);
    const hasValue = keyOf(operation, 'value') !== undefined;
    const value = attributeOf(operation, 'value');
    if (lower === 'remove' && typeof path !== 'string')
      throw new ScimError(400, `${where}: remove needs a path`, ScimTypes.noTarget);
    if (lower !== 'remove' && !hasValue)
      throw new ScimError(400, `${where}: ${lower} needs a value`, ScimTypes.invalidValue);
    if (hasValue) assertSafeValue(value, where);
    return {
      op: lower,
      ...(typeof path === 'string' ? { path: path.trim() } : {}),
      ...(hasValue ? { value } : {}),
    };
  });
};

/**
 * Applies the operations to a copy of `resource` with `scim-patch`; its errors become 400s with
 * the `scimType` it names.
 *
 * @example applyPatch({ schemas: [Urns.user], userName: 'ann', active: true }, [{ op: 'replace', path: 'active', value: false }])
 */
const applyPatch = (
  resource: Record<string, unknown>,
  operations: readonly PatchOperation[],
): Record<string, unknown> => {
  try {
    return scimPatch(
      resource as unknown as Parameters<typeof scimPatch>[0],
      operations as unknown as ScimPatchOperation[],
      { mutateDocument: false, treatMissingAsAdd: true },
    ) as unknown as Record<string, unknown>;
  } catch (error) {
    const scimCode = (error as { scimCode?: unknown }).scimCode;
    const message = error instanceof Error ? error.message : String(error);
    throw new ScimError(400, message, typeof scimCode === 'string' ? scimCode : ScimTypes.invalidSyntax, {
      cause: error,
    });
  }
};

/** `members`, with or without the core Group schema prefix. */
const isMembersPath = (path: string): boolean => {
  const lower = path.toLowerCase();
  const prefix = `${Urns.group.toLowerCase()}:`;
  return (lower.startsWith(prefix) ? lower.slice(prefix.length) : lower).startsWith('members');
};

const stripGroupSchema = (path: string): string => {
  const prefix = `${Urns.group}:`;
  return path.toLowerCase().startsWith(prefix.toLowerCase()) ? path.slice(prefix.length) : path;
};

/** Okta's form: `members[value eq "<id>"]`, optionally with a sub-attribute. */
const memberFilterPath = /^members\[\s*value\s+eq\s+"((?:[^"\\]|\\.)*)"\s*\](?:\.[A-Za-z$]+)?$/i;

const memberIdsOf = (value: unknown): string[] | undefined => {
  const list = Array.isArray(value) ? value : [value];
  const ids: string[] = [];
  for (const item of list) {
    const id = isRecord(item) ? attributeOf(item, 'value') : undefined;
    if (typeof id !== 'string') return undefined;
    ids.push(id);
  }
  return ids;
};

/**
 * The members the operations can change: a set of user ids, or `all` when an operation replaces
 * or clears the whole list, or selects members by something other than their id.
 *
 * @example memberScope([{ op: 'remove', path: 'members[value eq "u1"]' }]) // Set { 'u1' }
 */
const memberScope = (operations: readonly PatchOperation[]): Set<string> | 'all' => {
  const ids = new Set<string>();
  for (const operation of operations) {
    if (operation.path === undefined) {
      if (!isRecord(operation.value) || keyOf(operation.value, 'members') === undefined) continue;
      if (operation.op !== 'add') return 'all';
      const listed = memberIdsOf(attributeOf(operation.value, 'members'));
      if (listed === undefined) return 'all';
      for (const id of listed) ids.add(id);
      continue;
    }
    if (!isMembersPath(operation.path)) continue;
    const path = stripGroupSchema(operation.path);
    const filtered = memberFilterPath.exec(path);
    if (filtered !== null) {
      ids.add(JSON.parse(`"${filtered[1]}"`) as string);
      continue;
    }
    if (path.toLowerCase() !== 'members' || operation.op === 'replace' || operation.value === undefined)
      return 'all';
    const listed = memberIdsOf(operation.value);
    if (listed === undefined) return 'all';
    for (const id of listed) ids.add(id);
  }
  return ids;
};

/**
 * Member values reduced to `{ value }`: Entra sends `"$ref": null`, Okta a `display`; removing by
 * value compares whole objects, so both sides must look alike.
 */
const normalizeMemberValues = (operations: readonly PatchOperation[]): PatchOperation[] =>
  operations.map((operation) => {
    const strip = (value: unknown): unknown => {
      const ids = memberIdsOf(value);
      return ids === undefined ? value : ids.map((id) => ({ value: id }));
    };
    if (operation.path !== undefined && stripGroupSchema(operation.path).toLowerCase() === 'members')
      return operation.value === undefined ? operation : { ...operation, value: strip(operation.value) };
    if (operation.path === undefined && isRecord(operation.value)) {
      const key = keyOf(operation.value, 'members');
      if (key !== undefined)
        return { ...operation, value: { ...operation.value, [key]: strip(operation.value[key]) } };
    }
    return operation;
  });

export type { PatchOperation };
export { applyPatch, memberScope, normalizeMemberValues, readPatch };
