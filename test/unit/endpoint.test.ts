import { isIPv4 } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/errors.ts';
import { assertEndpoint } from '../../lib/swr/endpoint.ts';

/** What the loopback rule said when it used node:net: localhost, ::1, or an IPv4 host in 127/8. */
const loopbackByNodeNet = (url: string): boolean => {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || (isIPv4(host) && host.startsWith('127.'));
};

const accepted = (url: string): boolean => {
  try {
    assertEndpoint(url, 'SWR_ENDPOINT');
    return true;
  } catch (error) {
    if (error instanceof ConfigError) return false;
    throw error;
  }
};

const octet = fc.oneof(
  fc.integer({ min: 0, max: 300 }).map(String),
  fc.constantFrom('0x7f', '00', '010', '1'),
);
const host = fc.oneof(
  fc
    .tuple(fc.constantFrom('127', '128', '126', '0x7f', '0177'), octet, octet, octet)
    .map((parts) => parts.join('.')),
  fc.tuple(fc.constantFrom('127', '0x7f'), octet).map((parts) => parts.join('.')),
  fc.constantFrom('localhost', 'LOCALHOST', '[::1]', '[::ffff:127.0.0.1]', 'example.com', '127.example.com'),
);

describe('assertEndpoint over http:', () => {
  it('takes exactly the loopback hosts node:net took', () => {
    fc.assert(
      fc.property(host, (name) => {
        // Prepare
        const url = `http://${name}:8080`;
        let valid = true;
        try {
          new URL(url);
        } catch {
          valid = false;
        }
        fc.pre(valid);

        // Act
        const result = accepted(url);

        // Assess
        expect(result).toBe(loopbackByNodeNet(url));
      }),
      { seed: 20261130, numRuns: 500 },
    );
  });
});
