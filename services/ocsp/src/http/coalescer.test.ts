import { Coalescer } from './coalescer';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('Coalescer', () => {
  it('posts what is added in one turn of the event loop as one message, in order', async () => {
    const posted: number[][] = [];
    const coalescer = new Coalescer<number>((items) => posted.push(items));
    coalescer.add(1);
    coalescer.add(2);
    coalescer.add(3);
    expect(posted).toEqual([]);
    await turn();
    expect(posted).toEqual([[1, 2, 3]]);
  });

  it('starts a new message for what is added after a post, and posts nothing when nothing was added', async () => {
    const posted: string[][] = [];
    const coalescer = new Coalescer<string>((items) => posted.push(items));
    coalescer.add('a');
    await turn();
    await turn();
    coalescer.add('b');
    await turn();
    expect(posted).toEqual([['a'], ['b']]);
  });
});
