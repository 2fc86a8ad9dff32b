// cpp.cpp — the C++ allocation operators land in the interposed malloc & co: new/delete,
// new[]/delete[], aligned new (C++17) and the failure answers (std::bad_alloc, nullptr).
#include "check.h"

#include <new>
#include <string>
#include <vector>

static const size_t sizes[] = {1, 100, SLAB_MAX, SLAB_MAX + 1, MiB, BUDDY_MAX + 1, 16 * MiB};

// check_block() also shows that the operators' blocks are the allocator's: malloc_usable_size
// knows them.

static void t_new_delete() {
  for (size_t n : sizes) {
    char *p = new char[opaque(n)];
    check_block("new[]", p, n, 1);
    delete[] p;
    void *q = ::operator new(opaque(n));
    check_block("operator new", q, n, fundamental_alignment(n));
    ::operator delete(q, n);  // sized delete
  }
  long *l = new long(42);
  check_block("new long", l, sizeof *l, alignof(long));
  delete l;

  // Containers: many small blocks, regrowth, moves, frees.
  std::vector<std::string> v;
  for (int i = 0; i < 100000; i++) v.push_back(std::string(opaque(i % 200), char('a' + i % 26)));
  for (int i = 0; i < 100000; i++)
    if (v[i].size() != (size_t)(i % 200) ||
        (!v[i].empty() && v[i].back() != char('a' + i % 26))) {
      CHECK(0, "string %d changed", i);
      break;
    }
}

struct alignas(64) Line { char c[100]; };
struct alignas(4096) Page { char c[10]; };

static void t_aligned_new() {
  Line *a = new Line;
  check_block("new Line", a, sizeof *a, 64);
  delete a;
  Page *b = new Page[10];
  check_block("new Page[10]", b, 10 * sizeof *b, 4096);
  delete[] b;
  for (int lg = 4; lg <= 22; lg++) {
    std::align_val_t al{(size_t)1 << lg};
    for (size_t n : sizes) {
      void *p = ::operator new(opaque(n), al);
      check_block("aligned operator new", p, n, (size_t)al);
      if (n % 2) ::operator delete(p, al);
      else ::operator delete(p, n, al);
    }
  }
}

static void t_new_fail() {
  bool threw = false;
  try {
    void *p = ::operator new(opaque(SIZE_MAX / 2));
    ::operator delete(p);
  } catch (const std::bad_alloc &) {
    threw = true;
  }
  CHECK(threw, "operator new(SIZE_MAX / 2) did not throw std::bad_alloc");
  threw = false;
  try {
    void *p = ::operator new(opaque(SIZE_MAX / 2), std::align_val_t{64});
    ::operator delete(p, std::align_val_t{64});
  } catch (const std::bad_alloc &) {
    threw = true;
  }
  CHECK(threw, "aligned operator new(SIZE_MAX / 2) did not throw std::bad_alloc");
  void *p = ::operator new(opaque(SIZE_MAX / 2), std::nothrow);
  CHECK(p == nullptr, "nothrow new(SIZE_MAX / 2) = %p", p);
  p = ::operator new[](opaque(SIZE_MAX / 2), std::align_val_t{4096}, std::nothrow);
  CHECK(p == nullptr, "nothrow aligned new[](SIZE_MAX / 2) = %p", p);
}

static const struct test tests[] = {
    {"new_delete", t_new_delete},
    {"aligned_new", t_aligned_new},
    {"new_fail", t_new_fail},
};

int main(int argc, char **argv) { return RUN_TESTS(tests, argc, argv); }
