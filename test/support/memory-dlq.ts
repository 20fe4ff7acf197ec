/** A dead-letter sender for tests: keeps every letter it is given, or refuses them all. */
import type { DeadLetter, DeadLetterSender } from '../../lib/dlq.ts';

/**
 * @example const dlq = memoryDlq(); … expect(dlq.letters.map((letter) => letter.error.code)).toEqual(['SCHEMA']);
 */
const memoryDlq = (fail = false): DeadLetterSender & { letters: DeadLetter[] } => {
  const letters: DeadLetter[] = [];
  return {
    letters,
    send: async (batch) => {
      if (fail)
        return { sent: [], failed: batch.map((letter) => ({ messageId: letter.messageId, reason: 'down' })) };
      letters.push(...batch);
      return { sent: batch.map((letter) => letter.messageId), failed: [] };
    },
  };
};

export { memoryDlq };
