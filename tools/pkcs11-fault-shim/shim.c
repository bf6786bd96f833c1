/*
 * pkcs11-fault-shim: a PKCS#11 module that forwards to a real one (SoftHSM by default) and fails
 * on command, so that tests can make an HSM die under load and come back.
 *
 * Why a shim and not SoftHSM itself: moving SoftHSM's token folder away under a running process
 * does not look like a dead HSM. SoftHSM 2.6.1 answers C_Sign with CKR_OBJECT_HANDLE_INVALID (a
 * "key not found" answer, not a device one), C_GetTokenInfo with CKR_GENERAL_ERROR, and the same
 * session stays broken after the folder comes back. A network HSM that fails answers
 * CKR_DEVICE_ERROR / CKR_DEVICE_REMOVED / CKR_TOKEN_NOT_PRESENT, and its client library has to be
 * re-initialised afterwards. This shim reproduces that. (The key manager's test signature calls
 * C_GetTokenInfo, so it does notice SoftHSM's folder going away; hsm-fault.test.ts covers both.)
 *
 * Control, read on every call so a test can flip it at any moment:
 *   PKCS11_FAULT_TARGET  the real module (default /usr/lib/softhsm/libsofthsm2.so)
 *   PKCS11_FAULT_FILE    while this file exists, the module is faulty. Its first word picks how:
 *     "device-error"   (default) every call that reaches the device, C_Initialize included,
 *                      returns CKR_DEVICE_ERROR: the appliance or its link is down.
 *     "token-removed"  the library works but the token is gone: C_GetSlotList(tokenPresent)
 *                      lists no slot, slot calls return CKR_TOKEN_NOT_PRESENT and session calls
 *                      CKR_DEVICE_REMOVED.
 *
 * After a fault, and until the application calls C_Finalize and C_Initialize again, every call
 * that uses a session or a slot returns CKR_DEVICE_ERROR even though the fault file is gone: the
 * sessions and login of the old initialisation died with the device (PKCS#11 v2.40 §5.6: removing
 * the token closes its sessions). A client that only retries never recovers; one that
 * re-initialises does. C_Finalize, C_CloseSession, C_GetInfo and C_GetFunctionList always pass
 * through so that a client can always clean up.
 *
 * Built by the tests with: gcc -shared -fPIC -O2 -I/usr/include/p11-kit-1 shim.c -o shim.so -ldl
 * (p11-kit's OASIS-compatible pkcs11.h comes with Debian's libp11-kit-dev).
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <p11-kit/pkcs11.h>

enum fault { FAULT_NONE, FAULT_DEVICE_ERROR, FAULT_TOKEN_REMOVED };

static CK_FUNCTION_LIST shim;       /* the table handed to the application */
static CK_FUNCTION_LIST_PTR real;   /* the real module's table */
/* Counted with atomics: libuv worker threads call in concurrently (CKF_OS_LOCKING_OK). */
static unsigned fault_epoch;        /* +1 each time a fault starts */
static unsigned init_epoch;         /* fault_epoch at the last successful C_Initialize */
static int in_fault;

static enum fault read_fault(void) {
  const char *path = getenv("PKCS11_FAULT_FILE");
  if (path == NULL || path[0] == '\0') return FAULT_NONE;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FAULT_NONE;
  char word[32] = {0};
  ssize_t n = read(fd, word, sizeof word - 1);
  close(fd);
  return n > 0 && strncmp(word, "token-removed", 13) == 0 ? FAULT_TOKEN_REMOVED : FAULT_DEVICE_ERROR;
}

/* The current fault, noting when a new one starts. */
static enum fault current_fault(void) {
  enum fault f = read_fault();
  if (f != FAULT_NONE) {
    if (__atomic_exchange_n(&in_fault, 1, __ATOMIC_SEQ_CST) == 0) __atomic_add_fetch(&fault_epoch, 1, __ATOMIC_SEQ_CST);
  } else {
    __atomic_store_n(&in_fault, 0, __ATOMIC_SEQ_CST);
  }
  return f;
}

/* CKR_OK to forward, or the error a faulty (or not yet re-initialised) device gives. */
static CK_RV slot_check(void) {
  switch (current_fault()) {
    case FAULT_DEVICE_ERROR: return CKR_DEVICE_ERROR;
    case FAULT_TOKEN_REMOVED: return CKR_TOKEN_NOT_PRESENT;
    default: break;
  }
  return __atomic_load_n(&init_epoch, __ATOMIC_SEQ_CST) == __atomic_load_n(&fault_epoch, __ATOMIC_SEQ_CST) ? CKR_OK : CKR_DEVICE_ERROR;
}

static CK_RV session_check(void) {
  CK_RV rv = slot_check();
  return rv == CKR_TOKEN_NOT_PRESENT ? CKR_DEVICE_REMOVED : rv;
}

static CK_RV shim_Initialize(CK_VOID_PTR args) {
  if (current_fault() == FAULT_DEVICE_ERROR) return CKR_DEVICE_ERROR;
  /* Taken before the call: a fault that starts during C_Initialize leaves the module stale. */
  unsigned epoch = __atomic_load_n(&fault_epoch, __ATOMIC_SEQ_CST);
  CK_RV rv = real->C_Initialize(args);
  if (rv == CKR_OK) __atomic_store_n(&init_epoch, epoch, __ATOMIC_SEQ_CST);
  return rv;
}

static CK_RV shim_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR list, CK_ULONG_PTR count) {
  enum fault f = current_fault();
  if (f == FAULT_TOKEN_REMOVED && tokenPresent) {
    *count = 0; /* the slot is there, its token is not */
    return CKR_OK;
  }
  CK_RV rv = slot_check();
  return rv == CKR_OK || rv == CKR_TOKEN_NOT_PRESENT ? real->C_GetSlotList(tokenPresent, list, count) : rv;
}

/* Wrappers that check, then forward with the same arguments. */
#define SLOT_CALL(name, params, args) \
  static CK_RV shim_##name params { CK_RV rv = slot_check(); return rv != CKR_OK ? rv : real->C_##name args; }
#define SESSION_CALL(name, params, args) \
  static CK_RV shim_##name params { CK_RV rv = session_check(); return rv != CKR_OK ? rv : real->C_##name args; }

SLOT_CALL(GetTokenInfo, (CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info), (slot, info))
SLOT_CALL(OpenSession, (CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify, CK_SESSION_HANDLE_PTR session),
          (slot, flags, app, notify, session))
SESSION_CALL(GetSessionInfo, (CK_SESSION_HANDLE s, CK_SESSION_INFO_PTR info), (s, info))
SESSION_CALL(Login, (CK_SESSION_HANDLE s, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len), (s, user, pin, len))
SESSION_CALL(Logout, (CK_SESSION_HANDLE s), (s))
SESSION_CALL(FindObjectsInit, (CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n), (s, t, n))
SESSION_CALL(FindObjects, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE_PTR o, CK_ULONG max, CK_ULONG_PTR n), (s, o, max, n))
SESSION_CALL(GetAttributeValue, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n), (s, o, t, n))
SESSION_CALL(SignInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k), (s, m, k))
SESSION_CALL(Sign, (CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR sig, CK_ULONG_PTR sl), (s, d, dl, sig, sl))
SESSION_CALL(SignUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG dl), (s, d, dl))
SESSION_CALL(SignFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR sig, CK_ULONG_PTR sl), (s, sig, sl))
SESSION_CALL(GenerateKeyPair, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pt, CK_ULONG pn, CK_ATTRIBUTE_PTR vt,
                               CK_ULONG vn, CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv),
             (s, m, pt, pn, vt, vn, pub, priv))

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  if (list == NULL) return CKR_ARGUMENTS_BAD;
  /* pkcs11js calls this once per load, from the JavaScript thread, before any other call. */
  if (real == NULL) {
    const char *target = getenv("PKCS11_FAULT_TARGET");
    /* Never dlclosed: the real module's state must outlive any one client's load/unload. */
    void *handle = dlopen(target != NULL && target[0] != '\0' ? target : "/usr/lib/softhsm/libsofthsm2.so", RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) return CKR_GENERAL_ERROR;
    CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR) = (CK_RV(*)(CK_FUNCTION_LIST_PTR_PTR))dlsym(handle, "C_GetFunctionList");
    if (get == NULL) return CKR_GENERAL_ERROR;
    CK_RV rv = get(&real);
    if (rv != CKR_OK) return rv;
    shim = *real; /* everything not overridden below is the real module's */
    shim.C_Initialize = shim_Initialize;
    shim.C_GetSlotList = shim_GetSlotList;
    shim.C_GetTokenInfo = shim_GetTokenInfo;
    shim.C_OpenSession = shim_OpenSession;
    shim.C_GetSessionInfo = shim_GetSessionInfo;
    shim.C_Login = shim_Login;
    shim.C_Logout = shim_Logout;
    shim.C_FindObjectsInit = shim_FindObjectsInit;
    shim.C_FindObjects = shim_FindObjects;
    shim.C_GetAttributeValue = shim_GetAttributeValue;
    shim.C_SignInit = shim_SignInit;
    shim.C_Sign = shim_Sign;
    shim.C_SignUpdate = shim_SignUpdate;
    shim.C_SignFinal = shim_SignFinal;
    shim.C_GenerateKeyPair = shim_GenerateKeyPair;
  }
  *list = &shim;
  return CKR_OK;
}
