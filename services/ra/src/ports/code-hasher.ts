/** Memory-hard hashing of subscriber codes (and the dummy work that keeps unknown cards as slow). */
export interface CodeHasher {
  hash(code: string): Promise<string>;
  verify(code: string, encoded: string): Promise<boolean>;
  /** Burns the same work as a verify, for requests that have no hash to check against. */
  dummyVerify(code: string): Promise<void>;
  /**
   * True when a stored hash should be replaced after the next successful verify: a legacy
   * algorithm carried over from the old CA centre (migration), or weaker parameters than today's.
   */
  needsRehash(encoded: string): boolean;
}
