import * as graphene from 'graphene-pk11';
import * as pkcs11 from 'pkcs11js';
import { PkiError } from '@pki/kit';
import { pkcs11ErrorToPkiError } from '../adapters/pkcs11';

/**
 * Changes the token's user PIN (C_SetPIN in a session logged in as CKU_USER, PKCS#11 v2.40
 * §5.6), then logs in with the new PIN to prove the change took. The key manager port has no
 * such operation on purpose: only this ceremony step changes a PIN, and it loads the module for
 * the moment it takes, before any key manager of this process opens it.
 */
export function changeUserPin(request: { modulePath: string; tokenLabel: string; currentPin: string; newPin: string }): void {
  const operation = 'change token PIN';
  let module: graphene.Module;
  try {
    module = graphene.Module.load(request.modulePath);
  } catch (err) {
    throw new PkiError('UNAVAILABLE', `${operation}: HSM unavailable: cannot load PKCS#11 module ${request.modulePath}`, { cause: err });
  }
  let session: graphene.Session | undefined;
  try {
    module.initialize({ flags: pkcs11.CKF_OS_LOCKING_OK });
    const slot = findSlot(module, request.tokenLabel, operation);
    session = slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
    session.login(request.currentPin, graphene.UserType.USER);
    session.setPin(request.currentPin, request.newPin);
    session.logout();
    session.login(request.newPin, graphene.UserType.USER);
    session.logout();
  } catch (err) {
    throw pkcs11ErrorToPkiError(err, operation);
  } finally {
    quietly(() => session?.close());
    quietly(() => module.finalize());
    quietly(() => module.close());
  }
}

function findSlot(module: graphene.Module, label: string, operation: string): graphene.Slot {
  const slots = module.getSlots(true);
  for (let i = 0; i < slots.length; i++) {
    const slot = slots.items(i);
    if (slot.getToken().label.trim() === label) return slot;
  }
  throw new PkiError('UNAVAILABLE', `${operation}: HSM unavailable: no token labelled '${label}'`);
}

function quietly(action: () => void): void {
  try {
    action();
  } catch {
    // Releasing the module after the work is done (or failed): nothing more to do about it.
  }
}
