import { describe, expect, it, vi } from 'vitest';
import type { DeadLetter, DeadLetterSender } from '../../lib/dlq.ts';
import { SyncError } from '../../lib/errors.ts';
import { deadLetterSenderOnDemand } from '../../lib/runtime.ts';

const letterFactory = (messageId: string): DeadLetter => ({
  messageId,
  body: '{}',
  groupId: 'u1',
  receiveCount: 1,
  error: new SyncError('schema', { code: 'INVALID_EVENT', retryable: false }),
});

describe('deadLetterSenderOnDemand', () => {
  it('loads the sender with the first letter only, once, and hands it every send', async () => {
    // Prepare
    const send = vi.fn<DeadLetterSender['send']>(async (letters) => ({
      sent: letters.map((letter) => letter.messageId),
      failed: [],
    }));
    const load = vi.fn(async (): Promise<DeadLetterSender> => ({ send }));
    const sender = deadLetterSenderOnDemand(load);
    const failedAt = new Date('2026-11-30T10:00:00Z');

    // Act
    const loadedBeforeSend = load.mock.calls.length;
    const first = await sender.send([letterFactory('m1')], failedAt, { deadline: 1 });
    const second = await sender.send([letterFactory('m2')], failedAt);

    // Assess
    expect(loadedBeforeSend).toBe(0);
    expect(load).toHaveBeenCalledTimes(1);
    expect([first.sent, second.sent]).toEqual([['m1'], ['m2']]);
    expect(send.mock.calls[0]?.[2]).toEqual({ deadline: 1 });
  });

  it('reports every letter not sent when the sender cannot load, and loads again next time', async () => {
    // Prepare
    const load = vi
      .fn<() => Promise<DeadLetterSender>>()
      .mockRejectedValueOnce(new Error('Cannot find module ./dlq-ABC.js'))
      .mockResolvedValueOnce({
        send: async (letters) => ({ sent: letters.map((l) => l.messageId), failed: [] }),
      });
    const sender = deadLetterSenderOnDemand(load);

    // Act
    const failed = await sender.send([letterFactory('m1'), letterFactory('m2')], new Date());
    const retried = await sender.send([letterFactory('m1')], new Date());

    // Assess
    expect(failed).toEqual({
      sent: [],
      failed: ['m1', 'm2'].map((messageId) => ({
        messageId,
        reason: 'the dead-letter sender did not load (Cannot find module ./dlq-ABC.js)',
      })),
    });
    expect(retried.sent).toEqual(['m1']);
  });
});
