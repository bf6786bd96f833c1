import { Lifecycle } from './lifecycle';
import { createLogger } from './logging';

describe('graceful shutdown', () => {
  it('stops listeners first, then drains background work, then closes resources in reverse order', async () => {
    const order: string[] = [];
    const lifecycle = new Lifecycle(createLogger({ service: 't', level: 'silent' }));
    const step = (name: string) => ({ name, stop: async () => { order.push(name); } });
    lifecycle.onShutdownBegins(() => order.push('not-ready'));
    lifecycle.onClose(step('db-pool'));
    lifecycle.onClose(step('hsm'));
    lifecycle.onDrain(step('outbox-relay'));
    lifecycle.onStopAccepting(step('http'));
    await lifecycle.stop();
    expect(order).toEqual(['not-ready', 'http', 'outbox-relay', 'hsm', 'db-pool']);
  });

  it('bounds a stuck step and still closes the rest, then reports the failure', async () => {
    const closed: string[] = [];
    const lifecycle = new Lifecycle(createLogger({ service: 't', level: 'silent' }));
    lifecycle.onDrain({ name: 'stuck', stop: () => new Promise(() => undefined) });
    lifecycle.onClose({ name: 'pool', stop: async () => { closed.push('pool'); } });
    await expect(lifecycle.stop(50)).rejects.toThrow('one or more steps failed');
    expect(closed).toEqual(['pool']);
  });
});
