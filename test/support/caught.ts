/**
 * The error a promise rejects with; fails the test when it resolves instead.
 *
 * @example const error = await caught(client.getAccess(target)); expect(error).toBeInstanceOf(SyncError);
 */
const caught = async (promise: Promise<unknown>): Promise<unknown> => {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
};

export { caught };
