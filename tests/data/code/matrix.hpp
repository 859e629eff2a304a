#pragma once
#include <vector>
#include <cstddef>

using std::vector;

namespace linalg {

/// A dense row-major matrix.
template <typename T>
class Matrix {
 public:
  Matrix(std::size_t rows, std::size_t cols);

  /// Element access.
  T& operator()(std::size_t r, std::size_t c) { return data_[r * cols_ + c]; }

  /// Number of rows.
  std::size_t rows() const { return rows_; }

  std::size_t cols() const;

  struct Shape {
    std::size_t rows, cols;
  };

 private:
  std::size_t rows_, cols_;
  vector<T> data_;
};

template <typename T>
Matrix<T>::Matrix(std::size_t rows, std::size_t cols)
    : rows_(rows), cols_(cols), data_(rows * cols) {}

template <typename T>
std::size_t Matrix<T>::cols() const {
  return cols_;
}

/// Sum of all elements.
template <typename T>
T sum(const Matrix<T>& m) {
  T s{};
  for (std::size_t r = 0; r < m.rows(); ++r)
    for (std::size_t c = 0; c < m.cols(); ++c) s += m(r, c);
  return s;
}

}  // namespace linalg
