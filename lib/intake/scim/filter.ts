/**
 * SCIM filters (RFC 7644 §3.4.2.2), parsed and evaluated by `scim2-parse-filter`. We add what the
 * library leaves to the service provider: which equality can be answered from an index (Entra and
 * Okta only ever send `userName eq`, `externalId eq` and `displayName eq`), and case: attributes
 * are compared without case except those RFC 7643 marks case-exact (`id`, `externalId`, member
 * values, `meta`).
 */
import { filter as compileFilter, type Filter, parse } from 'scim2-parse-filter';
import { isRecord, ScimError, ScimTypes, Urns } from './protocol.ts';

type IndexedAttribute = 'userName' | 'displayName' | 'id' | 'externalId';

interface FilterPlan {
  /** An equality on an attribute we can look up, if the filter has one at its top (or in an `and`). */
  lookup: { attribute: IndexedAttribute; value: string } | undefined;
  /** Whether the filter reads `members` (a group must then be matched with its members). */
  readsMembers: boolean;
  matches(resource: Record<string, unknown>): boolean;
}

const maxFilterLength = 4096;

const caseExact = new Set(['id', 'externalid', 'members.value', 'members.$ref']);

const isCaseExact = (path: string): boolean =>
  caseExact.has(path) || path === 'meta' || path.startsWith('meta.');

/** `urn:…:core:2.0:User:userName` → `userName`: the core schemas are the resource itself. */
const stripCoreSchema = (attrPath: string): string => {
  for (const urn of [Urns.user, Urns.group]) {
    const prefix = `${urn}:`;
    if (attrPath.toLowerCase().startsWith(prefix.toLowerCase())) return attrPath.slice(prefix.length);
  }
  return attrPath;
};

const indexedAttributes: Record<string, IndexedAttribute> = {
  username: 'userName',
  displayname: 'displayName',
  id: 'id',
  externalid: 'externalId',
};

/**
 * Multi-valued attributes compared as a whole mean their `value` (RFC 7644 §3.4.2.2): Entra asks
 * `members eq "<id>"` to see whether a user is in a group.
 */
const multiValued = new Set([
  'members',
  'emails',
  'phonenumbers',
  'ims',
  'photos',
  'roles',
  'entitlements',
  'groups',
]);

const valuePathOf = (attrPath: string): string =>
  multiValued.has(attrPath.toLowerCase()) ? `${attrPath}.value` : attrPath;

/** Lower-cases the comparison values of attributes that are not case-exact. */
const foldFilter = (node: Filter, prefix: string): Filter => {
  switch (node.op) {
    case 'and':
    case 'or':
      return { ...node, filters: node.filters.map((child) => foldFilter(child, prefix)) };
    case 'not':
      return { ...node, filter: foldFilter(node.filter, prefix) };
    case '[]': {
      const attrPath = stripCoreSchema(node.attrPath);
      return {
        ...node,
        attrPath,
        valFilter: foldFilter(node.valFilter, `${prefix}${attrPath.toLowerCase()}.`),
      };
    }
    case 'pr':
      return { ...node, attrPath: stripCoreSchema(node.attrPath) };
    default: {
      const attrPath =
        prefix === '' ? valuePathOf(stripCoreSchema(node.attrPath)) : stripCoreSchema(node.attrPath);
      const full = `${prefix}${attrPath.toLowerCase()}`;
      return {
        ...node,
        attrPath,
        compValue:
          typeof node.compValue === 'string' && !isCaseExact(full)
            ? node.compValue.toLowerCase()
            : node.compValue,
      };
    }
  }
};

/** The resource with string values lower-cased where comparisons ignore case. */
const foldResource = (value: unknown, path: string): unknown => {
  if (typeof value === 'string') return isCaseExact(path) ? value : value.toLowerCase();
  if (Array.isArray(value)) return value.map((item) => foldResource(item, path));
  if (!isRecord(value)) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, child]) => [
      key,
      foldResource(child, path === '' ? key.toLowerCase() : `${path}.${key.toLowerCase()}`),
    ]),
  );
};

const lookupOf = (node: Filter): FilterPlan['lookup'] => {
  if (node.op === 'eq' && typeof node.compValue === 'string') {
    const attribute = indexedAttributes[stripCoreSchema(node.attrPath).toLowerCase()];
    if (attribute !== undefined) return { attribute, value: node.compValue };
  }
  if (node.op === 'and')
    for (const child of node.filters) {
      const found = lookupOf(child);
      if (found !== undefined) return found;
    }
  return undefined;
};

const mentionsMembers = (node: Filter): boolean => {
  switch (node.op) {
    case 'and':
    case 'or':
      return node.filters.some(mentionsMembers);
    case 'not':
      return mentionsMembers(node.filter);
    default:
      return stripCoreSchema(node.attrPath).toLowerCase().startsWith('members');
  }
};

/**
 * @example
 * const plan = readFilter('userName eq "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"');
 * plan.lookup // { attribute: 'userName', value: 'Test_User_…' }
 */
const readFilter = (text: string): FilterPlan => {
  if (text.length > maxFilterLength)
    throw new ScimError(
      400,
      `a filter may be at most ${maxFilterLength} characters`,
      ScimTypes.invalidFilter,
    );
  let ast: Filter;
  try {
    ast = parse(text);
  } catch {
    throw new ScimError(400, 'the filter is not a valid SCIM filter', ScimTypes.invalidFilter);
  }
  const folded = foldFilter(ast, '');
  const test = compileFilter(folded);
  return {
    lookup: lookupOf(ast),
    readsMembers: mentionsMembers(ast),
    matches: (resource) => test(foldResource(resource, '')),
  };
};

export type { FilterPlan, IndexedAttribute };
export { readFilter };
