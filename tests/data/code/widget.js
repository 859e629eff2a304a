import React, { useState } from "react";
import { format } from "./format.js";

/**
 * A counter button.
 */
export class Counter extends React.Component {
  static defaultProps = { step: 1 };

  /** Renders the button. */
  render() {
    return <button onClick={this.handleClick}>{format(this.state.count)}</button>;
  }

  handleClick = () => {
    this.setState({ count: this.state.count + this.props.step });
  };
}

// Hook version of the counter.
export function useCounter(initial) {
  const [count, setCount] = useState(initial);
  function inc() {
    setCount(count + 1);
  }
  return [count, inc];
}

export const double = (n) => n * 2;

function* ids() {
  let i = 0;
  while (true) yield i++;
}
