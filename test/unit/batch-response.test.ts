import { describe, expect, it } from 'vitest';
import {
  type BatchMessage,
  batchResponse,
  deadLetterNow,
  failEverything,
} from '../../lib/core/batch-response.ts';

const messages: BatchMessage[] = [
  { messageId: 'a1', groupId: 'alice' },
  { messageId: 'b1', groupId: 'bob' },
  { messageId: 'a2', groupId: 'alice' },
  { messageId: 'b2', groupId: 'bob' },
  { messageId: 'a3', groupId: 'alice' },
];

describe('batchResponse (FIFO group rule)', () => {
  it.each([
    {
      name: 'everything applied lists nothing',
      outcomes: { a1: 'applied', b1: 'applied', a2: 'applied', b2: 'applied', a3: 'applied' },
      listed: [],
    },
    {
      name: 'a retry lists every later message of its group, other groups carry on',
      outcomes: { a1: 'applied', b1: 'applied', a2: 'retry', b2: 'applied', a3: 'applied' },
      listed: ['a2', 'a3'],
    },
    {
      name: 'a dead-lettered message is not listed',
      outcomes: { a1: 'dead-lettered', b1: 'applied', a2: 'applied', b2: 'dead-lettered', a3: 'applied' },
      listed: [],
    },
    {
      name: 'a message without an outcome is retried with the rest of its group',
      outcomes: { a1: 'applied', b1: 'applied', a2: 'applied', a3: 'applied' },
      listed: ['b2'],
    },
  ] as const)('$name', ({ outcomes, listed }) => {
    // Act
    const response = batchResponse(messages, new Map(Object.entries(outcomes)));

    // Assess
    expect(response.batchItemFailures.map((failure) => failure.itemIdentifier)).toEqual(listed);
  });

  it('does not block on a standard queue (no group)', () => {
    // Act
    const response = batchResponse(
      [
        { messageId: 'x', groupId: undefined },
        { messageId: 'y', groupId: undefined },
      ],
      new Map([
        ['x', 'retry'],
        ['y', 'applied'],
      ]),
    );

    // Assess
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'x' }]);
  });

  it('failEverything lists every message, never none', () => {
    expect(failEverything(messages).batchItemFailures).toHaveLength(messages.length);
  });
});

describe('deadLetterNow', () => {
  it('dead-letters permanent failures except those behind a retry of their group', () => {
    // Prepare
    const outcomes = new Map<string, 'applied' | 'permanent' | 'retry'>([
      ['a1', 'retry'],
      ['b1', 'permanent'],
      ['a2', 'permanent'],
      ['b2', 'permanent'],
      ['a3', 'applied'],
    ]);

    // Act
    const ready = deadLetterNow(messages, outcomes);

    // Assess
    expect([...ready].sort()).toEqual(['b1', 'b2']);
  });
});
