// cpp_subject.cpp — a C++ program whose allocations come through operator new
// from a function with a mangled name: 300 x 3000 bytes from
// demo::Factory<demo::Widget>::make(), called by demo::fill().
#include <vector>

namespace demo {
struct Widget {
  char payload[3000];
};

template <typename T> struct Factory {
  __attribute__((noinline)) static T *make() {
    T *made = new T();
    asm volatile("" ::: "memory");
    return made;
  }
};

__attribute__((noinline)) void fill(std::vector<Widget *> &out, int n) {
  for (int i = 0; i < n; i++) out.push_back(Factory<Widget>::make());
  asm volatile("" ::: "memory");
}
} // namespace demo

int main() {
  std::vector<demo::Widget *> widgets;
  widgets.reserve(300);
  demo::fill(widgets, 300);
  for (demo::Widget *w : widgets) delete w;
  return 0;
}
