/**
 * Route templates matched against the raw (still percent-encoded) path, segment by segment.
 * A parameter segment that hides a slash (`%2F`) never matches: SWR would see another path.
 */

interface RouteMatch<R> {
  route: R;
  params: Record<string, string>;
}

interface Routable {
  method: string;
  template: string;
}

const matchTemplate = (template: string, rawPath: string): Record<string, string> | undefined => {
  const want = template.split('/');
  const got = rawPath.split('/');
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, part] of want.entries()) {
    const segment = got[i] ?? '';
    if (part.startsWith('{') && part.endsWith('}')) {
      if (/%2f/i.test(segment)) return undefined;
      try {
        params[part.slice(1, -1)] = decodeURIComponent(segment);
      } catch {
        return undefined;
      }
    } else if (part !== segment) return undefined;
  }
  return params;
};

/** The first route whose method and template match, with its decoded parameters. */
const matchRoute = <R extends Routable>(
  routes: readonly R[],
  method: string,
  rawPath: string,
): RouteMatch<R> | undefined => {
  for (const route of routes) {
    if (route.method !== method) continue;
    const params = matchTemplate(route.template, rawPath);
    if (params !== undefined) return { route, params };
  }
  return undefined;
};

export type { Routable, RouteMatch };

/**
 * The query as the gateway reads it: `&`-separated, percent-decoded, `+` kept as a plus sign (the
 * official SDKs never send `+` for a space: they send `%20`, and sign it that way).
 */
const parseQuery = (rawQuery: string): URLSearchParams => {
  const params = new URLSearchParams();
  for (const pair of rawQuery.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const decode = (part: string) => {
      try {
        return decodeURIComponent(part);
      } catch {
        return part;
      }
    };
    params.append(decode(eq < 0 ? pair : pair.slice(0, eq)), decode(eq < 0 ? '' : pair.slice(eq + 1)));
  }
  return params;
};

export { matchRoute, parseQuery };
