/**
 * Whether a JSON text names a key twice in one object. `JSON.parse` keeps the last silently; a
 * policy that says two things must be refused instead (as the YAML reader does).
 */

const isSpace = (char: string | undefined): boolean =>
  char === ' ' || char === '\t' || char === '\n' || char === '\r';

/**
 * For a text `JSON.parse` accepts (anything else gives an unspecified answer). Keys compare as
 * decoded (`"a"` and `"\u0061"` are the same key).
 *
 * @example hasDuplicateKeys('{"a": 1, "b": {"a": 2}}') // false
 * @example hasDuplicateKeys('{"a": 1, "a": 2}') // true
 */
const hasDuplicateKeys = (json: string): boolean => {
  // One set of keys per open object; `undefined` for an open array.
  const open: (Set<string> | undefined)[] = [];
  let index = 0;
  while (index < json.length) {
    const char = json[index];
    if (char === '"') {
      let end = index + 1;
      while (json[end] !== '"') end += json[end] === '\\' ? 2 : 1;
      const literal = json.slice(index, end + 1);
      index = end + 1;
      const keys = open.at(-1);
      if (keys === undefined) continue;
      let next = index;
      while (isSpace(json[next])) next += 1;
      if (json[next] !== ':') continue;
      const key = JSON.parse(literal) as string;
      if (keys.has(key)) return true;
      keys.add(key);
      continue;
    }
    if (char === '{') open.push(new Set());
    else if (char === '[') open.push(undefined);
    else if (char === '}' || char === ']') open.pop();
    index += 1;
  }
  return false;
};

export { hasDuplicateKeys };
