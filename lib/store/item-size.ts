/**
 * The size DynamoDB counts for an item against its 400 KB limit, from the documented rules
 * ("Item sizes and formats", DynamoDB developer guide), over plain values as lib-dynamodb
 * marshals them (undefined values removed):
 * - an attribute: its name's UTF-8 bytes + its value;
 * - a string: its UTF-8 bytes; a number: 1 byte per two significant digits + 1 (we add one more:
 *   the rule is given as approximate); a boolean or null: 1 byte;
 * - a list or map: 3 bytes + per element 1 byte + the element (+ its name's bytes, in a map).
 */

/** DynamoDB's item limit: 400 KB, counted in binary kilobytes. */
const dynamoItemLimitBytes = 400 * 1024;

const utf8Bytes = (text: string): number => Buffer.byteLength(text, 'utf8');

const numberBytes = (value: number): number => {
  const digits = String(Math.abs(value))
    .replace(/e.*$/i, '')
    .replace('.', '')
    .replace(/^0+/, '')
    .replace(/0+$/, '');
  return 2 + Math.ceil(Math.max(1, digits.length) / 2);
};

/**
 * Bytes DynamoDB counts for one attribute value (not its name).
 *
 * @example dynamoValueSize({ member: true, at: '2026-11-20T10:00:00.000Z' }) // 3 + (1+6+1) + (1+2+24) = 38
 */
const dynamoValueSize = (value: unknown): number => {
  if (typeof value === 'string') return utf8Bytes(value);
  if (typeof value === 'number') return numberBytes(value);
  if (typeof value === 'boolean' || value === null) return 1;
  if (Array.isArray(value))
    return value.reduce<number>(
      (sum, element) => (element === undefined ? sum : sum + 1 + dynamoValueSize(element)),
      3,
    );
  if (typeof value === 'object' && value !== undefined)
    return Object.entries(value as Record<string, unknown>).reduce<number>(
      (sum, [name, element]) =>
        element === undefined ? sum : sum + 1 + utf8Bytes(name) + dynamoValueSize(element),
      3,
    );
  // undefined and anything lib-dynamodb would not store.
  return 0;
};

/**
 * Bytes DynamoDB counts for a whole item (top-level attribute names included).
 *
 * @example dynamoItemSize({ pk: 'USER#1', sk: 'STATE' }) // 2 + 6 + 2 + 5 = 15
 */
const dynamoItemSize = (item: Record<string, unknown>): number =>
  Object.entries(item).reduce<number>(
    (sum, [name, value]) => (value === undefined ? sum : sum + utf8Bytes(name) + dynamoValueSize(value)),
    0,
  );

/**
 * Bytes one entry of a map attribute takes (what removing it saves).
 *
 * @example dynamoMapEntrySize('platform', fact)
 */
const dynamoMapEntrySize = (name: string, value: unknown): number =>
  1 + utf8Bytes(name) + dynamoValueSize(value);

/** Bytes one element of a list attribute takes (what removing it saves). */
const dynamoListElementSize = (value: unknown): number => 1 + dynamoValueSize(value);

export { dynamoItemLimitBytes, dynamoItemSize, dynamoListElementSize, dynamoMapEntrySize, dynamoValueSize };
